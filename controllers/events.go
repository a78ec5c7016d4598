package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
)

// maxEventNote keeps a batched event under the API server's limit on an
// event's note (1 KiB).
const maxEventNote = 1000

// appliedNotes gathers the objects one reconcile created and updated, so
// that they make one event each instead of one per object: a pooled
// tenant's creation wrote ten events, half its API writes.
type appliedNotes struct {
	created, updated []string
}

type notesKey struct{}

// withAppliedNotes returns a context under which applyOne gathers notes
// instead of recording events; flush records them.
func withAppliedNotes(ctx context.Context) (context.Context, *appliedNotes) {
	n := &appliedNotes{}
	return context.WithValue(ctx, notesKey{}, n), n
}

// note records that obj was created or updated: in the reconcile's notes
// when there are some, else as an event of its own.
func (r *UserServiceReconciler) note(ctx context.Context, us *v1alpha1.UserService, obj client.Object, reason string) {
	if _, ok := obj.(*discoveryv1.EndpointSlice); ok {
		// The pool's endpoints mirrored: the Pooled event says when they
		// start; their changes (a pool pod turning ready or not) are the
		// pool's business, not an event on each of its tenants.
		return
	}
	what := kindOf(r, obj) + " " + obj.GetName()
	if n, ok := ctx.Value(notesKey{}).(*appliedNotes); ok {
		if reason == "Created" {
			n.created = append(n.created, what)
		} else {
			n.updated = append(n.updated, what)
		}
		return
	}
	r.event(us, obj, corev1.EventTypeNormal, reason, "Apply", "%s %s", reason, what)
}

// flush records the gathered notes: "Created ServiceAccount acme; Created
// ConfigMap acme-config; ...", split where a note would grow too long.
func (n *appliedNotes) flush(r *UserServiceReconciler, us *v1alpha1.UserService) {
	for _, g := range []struct {
		reason string
		items  []string
	}{{"Created", n.created}, {"Updated", n.updated}} {
		var b strings.Builder
		for _, item := range g.items {
			part := g.reason + " " + item
			if b.Len() > 0 && b.Len()+2+len(part) > maxEventNote {
				r.event(us, nil, corev1.EventTypeNormal, g.reason, "Apply", "%s", b.String())
				b.Reset()
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			r.event(us, nil, corev1.EventTypeNormal, g.reason, "Apply", "%s", b.String())
		}
	}
	n.created, n.updated = nil, nil
}
