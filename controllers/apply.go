package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// FieldOwner is the operator's server-side apply field manager.
const FieldOwner = "userve-operator"

// annotationApplied holds a digest of what the operator last applied to an
// object. With it the operator tells "the spec asks for something else" (the
// digest differs, also when a field was dropped) from "someone edited the
// object" (a value it applies differs), and applies only then: a reconcile
// with nothing to change makes no write.
const annotationApplied = "userve.dev/applied"

type applyOutcome int

const (
	unchanged applyOutcome = iota
	created
	updated
)

// applier creates missing objects and applies changed ones with
// server-side apply under one field owner, reading the current state from
// the manager's cache.
type applier struct {
	client client.Client
	// live reads what the cache strips (managed fields).
	live   client.Reader
	scheme *runtime.Scheme
	// applied: objects whose fields the apply owns; nil: read every time.
	applied *appliedObjects
}

// newApplier is the tenant reconciler's applier: its cached client, its
// live reader and its memory of applied objects.
func (r *UserServiceReconciler) newApplier() applier {
	return applier{client: r.Client, live: r.APIReader, scheme: r.Scheme, applied: &r.applied}
}

// newApplier is the pool reconciler's applier.
func (r *PoolReconciler) newApplier() applier {
	return applier{client: r.Client, live: r.APIReader, scheme: r.Scheme, applied: &r.applied}
}

// apply makes the cluster hold desired, a typed object from the render
// package. Afterwards desired is the object as the cluster has it: the API
// server's answer on a write, else the cached object.
func (a applier) apply(ctx context.Context, desired client.Object) (applyOutcome, error) {
	gvk, err := apiutil.GVKForObject(desired, a.scheme)
	if err != nil {
		return unchanged, err
	}
	want, err := applyContent(desired)
	if err != nil {
		return unchanged, err
	}
	digest := digestOf(want)
	setAnnotation(want, annotationApplied, digest)

	u := &unstructured.Unstructured{Object: want}
	u.SetGroupVersionKind(gvk)
	current := desired.DeepCopyObject().(client.Object)
	switch err := a.client.Get(ctx, client.ObjectKeyFromObject(desired), current); {
	case apierrors.IsNotFound(err):
		// A plain create, not an apply: the API server then skips the
		// merge of an apply configuration into an empty object (and the
		// read before it), about a tenth of its CPU per pooled tenant.
		// The fields it owns are upgraded to the apply's before the first
		// apply that may drop one (upgradeOwnership).
		switch err := a.client.Create(ctx, u, client.FieldOwner(FieldOwner)); {
		case err == nil:
			return created, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, desired)
		case !apierrors.IsAlreadyExists(err):
			return unchanged, fmt.Errorf("create %s %s: %w", gvk.Kind, desired.GetName(), err)
		}
		// The cache had not seen it yet: apply over it.
		u = &unstructured.Unstructured{Object: want}
		u.SetGroupVersionKind(gvk)
		if err := a.upgradeOwnership(ctx, u); err != nil {
			return unchanged, err
		}
	case err != nil:
		return unchanged, err
	default:
		if current.GetAnnotations()[annotationApplied] == digest {
			have, err := toMap(current)
			if err != nil {
				return unchanged, err
			}
			if covers(have, want) {
				// Hand the caller the object as it is (with its status).
				reflect.ValueOf(desired).Elem().Set(reflect.ValueOf(current).Elem())
				return unchanged, nil
			}
		}
		if err := a.upgradeOwnership(ctx, current); err != nil {
			return unchanged, err
		}
	}

	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return unchanged, fmt.Errorf("apply %s %s: %w", gvk.Kind, desired.GetName(), err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, desired); err != nil {
		return unchanged, err
	}
	return updated, nil
}

// upgradeOwnership hands the fields the operator's plain create (or any
// other write of its own that is not an apply) set on obj to its apply
// field manager, so that the next apply removes what it no longer lists:
// an apply drops only fields its own manager applied before. It reads the
// object's managed fields from the API server (the cache strips them); the
// patch carries the resourceVersion read, so a concurrent write makes it
// fail and the reconcile retry.
func (a applier) upgradeOwnership(ctx context.Context, obj client.Object) error {
	if a.applied.has(obj.GetUID()) {
		return nil
	}
	if a.live == nil {
		return errors.New("applier without a live reader cannot upgrade field ownership")
	}
	gvk, err := apiutil.GVKForObject(obj, a.scheme)
	if err != nil {
		return err
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(gvk)
	switch err := a.live.Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(live, sets.New(FieldOwner), FieldOwner)
	if err != nil {
		return err
	}
	if patch != nil {
		if err := a.client.Patch(ctx, live, client.RawPatch(types.JSONPatchType, patch)); err != nil {
			return fmt.Errorf("hand the fields of %s %s to the apply: %w", live.GetKind(), live.GetName(), err)
		}
	}
	a.applied.add(live.GetUID())
	return nil
}

// remove deletes the object named like obj if the tenant controls it; it
// reports whether it deleted anything.
func (a applier) remove(ctx context.Context, obj client.Object, owner client.Object) (bool, error) {
	switch err := a.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	if !isControlledBy(obj, owner) {
		return false, nil
	}
	uid := obj.GetUID()
	if err := a.client.Delete(ctx, obj, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return true, nil
}

func isControlledBy(obj, owner client.Object) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.UID == owner.GetUID() {
			return true
		}
	}
	return false
}

// applyContent is the apply request body for a typed object: its JSON form
// without status, type meta (set from the scheme) and nulls.
func applyContent(obj client.Object) (map[string]any, error) {
	m, err := toMap(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	delete(m, "apiVersion")
	delete(m, "kind")
	return pruneNulls(m).(map[string]any), nil
}

func toMap(obj any) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

func pruneNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, item := range v {
			if item == nil {
				delete(v, k)
				continue
			}
			v[k] = pruneNulls(item)
		}
	case []any:
		for i := range v {
			v[i] = pruneNulls(v[i])
		}
	}
	return v
}

func digestOf(m map[string]any) string {
	data, _ := json.Marshal(m) // maps marshal with sorted keys
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

func setAnnotation(m map[string]any, key, value string) {
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	ann[key] = value
}

// covers reports whether have holds every value of want. Lists must match
// item by item; maps may hold more keys (the API server's defaults). A zero
// value in want matches a missing one in have, since the server omits
// empty fields.
func covers(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return have == nil && isZero(w)
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok {
				if isZero(wv) {
					continue
				}
				return false
			}
			if !covers(hv, wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok {
			return have == nil && len(w) == 0
		}
		if len(h) != len(w) {
			return false
		}
		for i := range w {
			if !covers(h[i], w[i]) {
				return false
			}
		}
		return true
	default:
		if have == nil {
			return isZero(want)
		}
		return reflect.DeepEqual(have, want)
	}
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}
