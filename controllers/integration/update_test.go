package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

func TestConfigChangeRollsPodsAndScalingDoesNot(t *testing.T) {
	us := newTenant(t)
	d := deployment(t, us)
	first := podHash(d)
	creds := &corev1.Secret{}
	if err := get(t, creds, us.Namespace, "acme-credentials"); err != nil {
		t.Fatal(err)
	}

	// A server setting: new config, new hash.
	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "vip", Type: v1alpha1.FieldBoolean}}
	})
	eventually(t, "the pods' config hash changes", func() error {
		if h := podHash(deployment(t, us)); h == first {
			return fmt.Errorf("hash still %s", h)
		}
		return nil
	})
	cm := &corev1.ConfigMap{}
	if err := get(t, cm, us.Namespace, "acme-config"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data[render.ConfigKey], "vip") {
		t.Errorf("ConfigMap not updated:\n%s", cm.Data[render.ConfigKey])
	}
	waitEvent(t, us, "Updated", "Updated ConfigMap acme-config")
	second := podHash(deployment(t, us))

	// Scaling: a new replica count, the same hash.
	update(t, us, func(u *v1alpha1.UserService) { three := int32(3); u.Spec.Replicas = &three })
	eventually(t, "the Deployment scales to 3", func() error {
		if r := *deployment(t, us).Spec.Replicas; r != 3 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	if h := podHash(deployment(t, us)); h != second {
		t.Errorf("scaling changed the config hash %s -> %s: it would roll every pod", second, h)
	}

	// The generated credentials survive every change.
	after := &corev1.Secret{}
	if err := get(t, after, us.Namespace, "acme-credentials"); err != nil {
		t.Fatal(err)
	}
	if string(after.Data[render.KeyJWTKey]) != string(creds.Data[render.KeyJWTKey]) ||
		string(after.Data[render.KeyAdminTokens]) != string(creds.Data[render.KeyAdminTokens]) {
		t.Error("credentials were regenerated")
	}
}

func TestSecretValueChangeRollsPods(t *testing.T) {
	ns := namespace(t)
	withDefaultMongo(t)
	tokens := secret(t, ns, "tokens", map[string]string{"list": "tok-1,tok-2"})
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "tokens", Key: "list"}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	var first string
	eventually(t, "the Deployment reads the tenant's own tokens", func() error {
		d := deployment(t, us)
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == v1alpha1.EnvAdminTokens && e.ValueFrom.SecretKeyRef.Name == "tokens" && e.ValueFrom.SecretKeyRef.Key == "list" {
				first = podHash(d)
				return nil
			}
		}
		return fmt.Errorf("env %+v", d.Spec.Template.Spec.Containers[0].Env)
	})
	creds := &corev1.Secret{}
	if err := get(t, creds, ns, "acme-credentials"); err != nil {
		t.Fatal(err)
	}
	if _, ok := creds.Data[render.KeyAdminTokens]; ok {
		t.Error("admin tokens generated although the tenant brings its own")
	}
	if err := get(t, tokens, ns, "tokens"); err != nil {
		t.Fatal(err)
	}
	if tokens.Labels[render.LabelWatched] != "true" {
		t.Errorf("the tenant's Secret is not labelled for the operator's cache: %v", tokens.Labels)
	}

	// No resync is due for minutes: only the watch can bring this change.
	newValue := []byte(`{"stringData":{"list":"tok-3"}}`)
	if err := k8s.Patch(context.Background(), tokens, client.RawPatch(types.MergePatchType, newValue)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new token rolls the pods", func() error {
		if h := podHash(deployment(t, us)); h == first {
			return fmt.Errorf("hash still %s", h)
		}
		return nil
	})
}

func TestOptionalObjectsFollowTheSpec(t *testing.T) {
	class := "nginx"
	us := newTenant(t, func(u *v1alpha1.UserService) {
		u.Spec.Ingress = &v1alpha1.IngressSpec{Host: "acme.example.com", ClassName: &class, TLSSecretName: "acme-tls"}
		u.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{}
		u.Spec.NetworkPolicy.Enabled = true
	})
	optional := []client.Object{&networkingv1.Ingress{}, &policyv1.PodDisruptionBudget{}, &networkingv1.NetworkPolicy{}}
	for _, obj := range optional {
		eventually(t, fmt.Sprintf("%T exists", obj), func() error { return get(t, obj, us.Namespace, "acme") })
	}
	eventually(t, "the endpoint is the ingress URL", func() error {
		if e := tenant(t, us).Status.Endpoint; e != "https://acme.example.com" {
			return fmt.Errorf("endpoint %q", e)
		}
		return nil
	})

	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Ingress = nil
		u.Spec.PodDisruptionBudget = nil
		u.Spec.NetworkPolicy.Enabled = false
	})
	for _, obj := range optional {
		eventually(t, fmt.Sprintf("%T is deleted", obj), func() error {
			err := get(t, obj, us.Namespace, "acme")
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (err %v)", err)
		})
	}
	waitEvent(t, us, "Deleted", "Deleted Ingress acme")
	eventually(t, "the endpoint is the Service again", func() error {
		if e := tenant(t, us).Status.Endpoint; e != "http://acme."+us.Namespace+".svc:8080" {
			return fmt.Errorf("endpoint %q", e)
		}
		return nil
	})
}

func TestSuspendScalesToZeroAndKeepsEverything(t *testing.T) {
	us := newTenant(t, func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
	})
	eventually(t, "the HPA exists", func() error { return get(t, &autoscalingv2.HorizontalPodAutoscaler{}, us.Namespace, "acme") })
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")

	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Suspend = true })
	eventually(t, "the Deployment scales to zero", func() error {
		if r := deployment(t, us).Spec.Replicas; r == nil || *r != 0 {
			return fmt.Errorf("replicas %v", r)
		}
		return nil
	})
	eventually(t, "the HPA is gone (it would scale the tenant back up)", func() error {
		if err := get(t, &autoscalingv2.HorizontalPodAutoscaler{}, us.Namespace, "acme"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("err %v", err)
		}
		return nil
	})
	markAvailable(t, us)
	got := waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "Suspended")
	if got.Status.Phase != v1alpha1.PhaseSuspended || got.Status.Replicas != 0 {
		t.Errorf("status = %+v", got.Status)
	}
	for _, o := range []struct {
		name string
		obj  client.Object
	}{{"acme-config", &corev1.ConfigMap{}}, {"acme-credentials", &corev1.Secret{}}, {"acme", &corev1.Service{}}} {
		if err := get(t, o.obj, us.Namespace, o.name); err != nil {
			t.Errorf("%T %s removed by suspend: %v", o.obj, o.name, err)
		}
	}

	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Suspend = false })
	eventually(t, "the HPA is back", func() error { return get(t, &autoscalingv2.HorizontalPodAutoscaler{}, us.Namespace, "acme") })
	eventually(t, "the Deployment leaves zero", func() error {
		// The operator gives replicas up to the autoscaler; the API server
		// defaults the field to 1 until the HPA acts.
		if r := deployment(t, us).Spec.Replicas; r == nil || *r == 0 {
			return fmt.Errorf("replicas %v", r)
		}
		return nil
	})
}

func TestAutoscalingOwnsReplicasWhileOn(t *testing.T) {
	ctx := context.Background()
	us := newTenant(t, func(u *v1alpha1.UserService) { two := int32(2); u.Spec.Replicas = &two })
	eventually(t, "2 replicas", func() error {
		if r := *deployment(t, us).Spec.Replicas; r != 2 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})

	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Replicas = nil
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 6}
	})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	eventually(t, "the HPA exists", func() error { return get(t, hpa, us.Namespace, "acme") })
	if hpa.Spec.MaxReplicas != 6 || hpa.Spec.ScaleTargetRef.Name != "acme" {
		t.Errorf("HPA spec = %+v", hpa.Spec)
	}

	// Play the HPA: scale the Deployment through its scale subresource.
	scale := []byte(`{"spec":{"replicas":5}}`)
	d := deployment(t, us)
	if err := k8s.SubResource("scale").Patch(ctx, d, client.RawPatch(types.MergePatchType, scale), client.FieldOwner("horizontal-pod-autoscaler")); err != nil {
		t.Fatalf("scale the Deployment: %v", err)
	}
	// Make the operator reconcile (a spec change), then check it left the
	// autoscaler's choice alone.
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.API.MinApp.DefaultLimit = 30 })
	waitCondition(t, us, v1alpha1.ConditionProgressing, metav1.ConditionTrue, "")
	if r := *deployment(t, us).Spec.Replicas; r != 5 {
		t.Errorf("replicas = %d after a reconcile, want the autoscaler's 5", r)
	}

	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = nil
		two := int32(2)
		u.Spec.Replicas = &two
	})
	eventually(t, "the HPA is deleted and replicas are the spec's again", func() error {
		if err := get(t, &autoscalingv2.HorizontalPodAutoscaler{}, us.Namespace, "acme"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("HPA: %v", err)
		}
		if r := *deployment(t, us).Spec.Replicas; r != 2 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
}
