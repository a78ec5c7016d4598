package runtime

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What the runtime reports back: a Deployment's status, as the Deployment
// controller would write it, and the tenants' local state.

// snapshotLocked is d's local state (under r.mu).
func (r *Runtime) snapshotLocked(d *deployment) Tenant {
	t := Tenant{
		Namespace:   d.key.Namespace,
		Name:        d.key.Name,
		UserService: d.owner,
		ServesPool:  d.pool,
		Desired:     d.desired,
		Problem:     d.problem,
	}
	if d.front != nil {
		t.URL = d.front.url
	}
	for _, rep := range d.replicas {
		info := rep.info()
		t.Pods = append(t.Pods, info)
		t.Replicas++
		if info.Ready {
			t.Ready++
		}
		if info.Hash == d.hash {
			t.Updated++
		}
	}
	sort.Slice(t.Pods, func(i, j int) bool { return t.Pods[i].Name < t.Pods[j].Name })
	return t
}

// writeStatus records the local replicas in the Deployment's status, as the
// Deployment controller would, when anything changed.
func (r *Runtime) writeStatus(ctx context.Context, d *appsv1.Deployment, t Tenant, hash string) error {
	updated := int32(0)
	for _, p := range t.Pods {
		if p.Hash == hash {
			updated++
		}
	}
	want := d.Status.DeepCopy()
	want.ObservedGeneration = d.Generation
	want.Replicas = t.Replicas
	want.UpdatedReplicas = updated
	want.ReadyReplicas = t.Ready
	want.AvailableReplicas = t.Ready
	want.UnavailableReplicas = max(0, t.Desired-t.Ready)
	now := metav1.Now()

	availMsg := fmt.Sprintf("%d of %d replicas ready", t.Ready, t.Desired)
	if t.Ready >= t.Desired {
		setCondition(want, appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", availMsg, now)
	} else {
		setCondition(want, appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", availMsg, now)
	}
	switch {
	case t.Problem != "":
		setCondition(want, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated",
			"local replicas cannot start: "+t.Problem, now)
	case updated == t.Desired && t.Replicas == t.Desired && t.Ready == t.Desired:
		setCondition(want, appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable",
			"local replicas of template "+hash+" are available", now)
	default:
		setCondition(want, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated",
			fmt.Sprintf("rolling local replicas to template %s: %d updated, %d ready of %d", hash, updated, t.Ready, t.Desired), now)
	}

	if !equality.Semantic.DeepEqual(&d.Status, want) {
		base := d.DeepCopy()
		d.Status = *want
		if err := r.client.Status().Patch(ctx, d, client.MergeFrom(base)); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("write status of %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	if t.URL != "" && d.Annotations[URLAnnotation] != t.URL {
		base := d.DeepCopy()
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[URLAnnotation] = t.URL
		if err := r.client.Patch(ctx, d, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("annotate %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	return nil
}

// setCondition sets a Deployment condition, keeping its transition time when
// the status stays and its update time when nothing changes.
func setCondition(s *appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	for i := range s.Conditions {
		c := &s.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status == status && c.Reason == reason && c.Message == msg {
			return
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message, c.LastUpdateTime = status, reason, msg, now
		return
	}
	s.Conditions = append(s.Conditions, appsv1.DeploymentCondition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		LastUpdateTime: now, LastTransitionTime: now,
	})
}

// readerLookup reads Secrets and ConfigMaps straight from the API server.
type readerLookup struct{ client.Reader }

func (l readerLookup) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := l.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
	return &s, err
}

func (l readerLookup) ConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	err := l.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cm)
	return &cm, err
}
