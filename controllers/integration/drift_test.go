package integration_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

func TestEditedObjectsArePutBack(t *testing.T) {
	ctx := context.Background()
	us := newTenant(t)
	d := deployment(t, us)

	// Someone swaps the image and drops the read-only root file system.
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"userve","image":"evil:latest","securityContext":{"readOnlyRootFilesystem":false}}]}}}}`)
	if err := k8s.Patch(ctx, d, client.RawPatch(types.StrategicMergePatchType, patch), client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Deployment is repaired", func() error {
		c := deployment(t, us).Spec.Template.Spec.Containers[0]
		if c.Image != serverImage || !*c.SecurityContext.ReadOnlyRootFilesystem {
			return fmt.Errorf("image %q readOnlyRootFilesystem %v", c.Image, *c.SecurityContext.ReadOnlyRootFilesystem)
		}
		return nil
	})
	waitEvent(t, us, "Updated", "Updated Deployment acme")

	// Someone rewrites the config.
	cm := &corev1.ConfigMap{}
	if err := get(t, cm, us.Namespace, "acme-config"); err != nil {
		t.Fatal(err)
	}
	want := cm.Data[render.ConfigKey]
	rewrite := []byte(`{"data":{"` + render.ConfigKey + `":"spec: {}\n"}}`)
	if err := k8s.Patch(ctx, cm, client.RawPatch(types.MergePatchType, rewrite)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ConfigMap is repaired", func() error {
		if err := get(t, cm, us.Namespace, "acme-config"); err != nil {
			return err
		}
		if cm.Data[render.ConfigKey] != want {
			return fmt.Errorf("config is %q", cm.Data[render.ConfigKey])
		}
		return nil
	})

	// Someone strips the label that puts the ServiceAccount in the
	// operator's cache.
	sa := &corev1.ServiceAccount{}
	if err := get(t, sa, us.Namespace, "acme"); err != nil {
		t.Fatal(err)
	}
	unlabel := []byte(`{"metadata":{"labels":{"` + render.LabelManagedBy + `":null}}}`)
	if err := k8s.Patch(ctx, sa, client.RawPatch(types.MergePatchType, unlabel)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the label is back", func() error {
		if err := get(t, sa, us.Namespace, "acme"); err != nil {
			return err
		}
		if sa.Labels[render.LabelManagedBy] != render.ManagedBy {
			return fmt.Errorf("labels %v", sa.Labels)
		}
		return nil
	})
}

func TestDeletedObjectsComeBack(t *testing.T) {
	ctx := context.Background()
	us := newTenant(t)
	d := deployment(t, us)
	for _, o := range []struct {
		name string
		obj  client.Object
	}{{"acme", &corev1.Service{}}, {"acme", &appsv1.Deployment{}}, {"acme-config", &corev1.ConfigMap{}}} {
		name, obj := o.name, o.obj
		if err := get(t, obj, us.Namespace, name); err != nil {
			t.Fatal(err)
		}
		uid := obj.GetUID()
		if err := k8s.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		eventually(t, fmt.Sprintf("%T %s is recreated", obj, name), func() error {
			err := get(t, obj, us.Namespace, name)
			switch {
			case apierrors.IsNotFound(err):
				return err
			case err != nil:
				return err
			case obj.GetUID() == uid:
				return fmt.Errorf("still the deleted object (no garbage collector here: a finalizer may hold it)")
			}
			return nil
		})
	}
	if got := deployment(t, us); podHash(got) != podHash(d) {
		t.Errorf("the recreated Deployment has hash %s, was %s", podHash(got), podHash(d))
	}
}

func TestDeletedCredentialsAreRegenerated(t *testing.T) {
	ctx := context.Background()
	us := newTenant(t)
	// Let the reconciles that creating the objects triggers finish: one
	// still in flight would re-create the Secret from what it read before
	// the deletion (the same key, which is harmless but not this test).
	waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	waitIdle(t)
	first := podHash(deployment(t, us))
	creds := &corev1.Secret{}
	if err := get(t, creds, us.Namespace, "acme-credentials"); err != nil {
		t.Fatal(err)
	}
	old := string(creds.Data[render.KeyJWTKey])
	if err := k8s.Delete(ctx, creds); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new credentials roll the pods", func() error {
		s := &corev1.Secret{}
		if err := get(t, s, us.Namespace, "acme-credentials"); err != nil {
			return err
		}
		if string(s.Data[render.KeyJWTKey]) == old || len(s.Data[render.KeyJWTKey]) != 64 {
			return fmt.Errorf("jwt key %q", s.Data[render.KeyJWTKey])
		}
		if podHash(deployment(t, us)) == first {
			return fmt.Errorf("pods not rolled")
		}
		return nil
	})
}
