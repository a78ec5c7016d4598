package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// The API server itself refuses invalid UserServices, with the message of
// the CRD's CEL rule (or schema) that failed.
func TestInvalidUserServicesAreRejected(t *testing.T) {
	ns := namespace(t)
	three := int32(3)
	five := int32(5)
	cases := []struct {
		name   string
		objMod func(*v1alpha1.UserService)
		want   string
	}{
		{"replicas with autoscaling", func(u *v1alpha1.UserService) {
			u.Spec.Replicas = &three
			u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
		}, "spec.replicas and spec.autoscaling are mutually exclusive"},
		{"duplicate custom fields", func(u *v1alpha1.UserService) {
			u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "level", Type: "integer"}, {Name: "level", Type: "string"}}
		}, "profile.customFields names must be unique"},
		{"custom field named like a built-in", func(u *v1alpha1.UserService) {
			u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "nickname", Type: "string"}}
		}, "custom field name collides with a built-in profile field"},
		{"maxLength on a boolean", func(u *v1alpha1.UserService) {
			u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "vip", Type: "boolean", MaxLength: &three}}
		}, "maxLength applies only to string and array custom fields"},
		{"custom field type", func(u *v1alpha1.UserService) {
			u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "vip", Type: "uuid"}}
		}, `Unsupported value: "uuid"`},
		{"minapp default above max", func(u *v1alpha1.UserService) {
			u.Spec.API.MinApp = v1alpha1.MinAppAPISpec{DefaultLimit: 50, MaxLimit: 10}
		}, "api.minapp.defaultLimit must not exceed maxLimit"},
		{"plus default above max", func(u *v1alpha1.UserService) {
			u.Spec.API.Plus.DefaultLimit, u.Spec.API.Plus.MaxLimit = 40, 30
		}, "api.plus.defaultLimit must not exceed maxLimit"},
		{"trusted proxy not a CIDR", func(u *v1alpha1.UserService) {
			u.Spec.API.Plus.TrustedProxies = []string{"10.0.0.0/8", "ingress-nginx"}
		}, "api.plus.trustedProxies must be CIDRs"},
		{"autoscaling with a zero CPU request", func(u *v1alpha1.UserService) {
			u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
			u.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0"), corev1.ResourceMemory: resource.MustParse("128Mi")}
		}, "spec.autoscaling needs a CPU request above zero"},
		{"autoscaling with a zero CPU limit", func(u *v1alpha1.UserService) {
			u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
			u.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")}
		}, "spec.autoscaling needs a CPU request above zero"},
		{"code limit per target below 1", func(u *v1alpha1.UserService) {
			u.Spec.Verification.Limits.PerTargetDaily = -1
		}, "spec.verification.limits.perTargetDaily"},
		{"code limit per tenant too high", func(u *v1alpha1.UserService) {
			u.Spec.Verification.Limits.PerTenantHourly = 2000000
		}, "spec.verification.limits.perTenantHourly"},
		{"code limit per address too high", func(u *v1alpha1.UserService) {
			u.Spec.Verification.Limits.PerAddressHourly = 10001
		}, "spec.verification.limits.perAddressHourly"},
		{"autoscaling min above max", func(u *v1alpha1.UserService) {
			u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: &five, MaxReplicas: 2}
		}, "autoscaling.minReplicas must not exceed maxReplicas"},
		{"name that cannot name a Service", func(u *v1alpha1.UserService) { u.Name = "acme.shop" },
			"metadata.name must be a DNS label"},
		{"deletion policy", func(u *v1alpha1.UserService) { u.Spec.DeletionPolicy = "Keep" }, `Unsupported value: "Keep"`},
		{"database name", func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "a/b" }, "spec.mongo.database"},
		{"database admin", func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "admin" }, "may not be admin, local or config"},
		{"database local", func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "local" }, "may not be admin, local or config"},
		{"database config", func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "config" }, "may not be admin, local or config"},
		{"database Admin", func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "Admin" }, "may not be admin, local or config"},
		{"ingress host", func(u *v1alpha1.UserService) { u.Spec.Ingress = &v1alpha1.IngressSpec{Host: "Bad Host"} }, "spec.ingress.host"},
		{"hserve on without a client ID", func(u *v1alpha1.UserService) {
			u.Spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true}
		}, "api.hserve.clientID is required while api.hserve.enabled is true"},
		{"hserve client ID", func(u *v1alpha1.UserService) {
			u.Spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: "a/b"}
		}, "spec.api.hserve.clientID"},
		{"hserve origin with a path", func(u *v1alpha1.UserService) {
			u.Spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: "abc", AllowedOrigins: []string{"https://app.example.com/login"}}
		}, "api.hserve.allowedOrigins must be origins"},
		{"hserve wildcard origin", func(u *v1alpha1.UserService) {
			u.Spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: "abc", AllowedOrigins: []string{"*"}}
		}, "api.hserve.allowedOrigins must be origins"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "invalid", Namespace: ns}}
			c.objMod(us)
			err := k8s.Create(context.Background(), us)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want Invalid mentioning %q", err, c.want)
			}
		})
	}
}

// The database a tenant uses never changes: spec.mongo.database can be
// given at creation only, so a tenant is never moved to an empty database.
func TestDatabaseNameIsImmutable(t *testing.T) {
	named := newTenant(t, func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "acme_users" })
	defaulted := newTenant(t)
	for name, c := range map[string]struct {
		us  *v1alpha1.UserService
		mod func(*v1alpha1.UserService)
	}{
		"changed": {named, func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "other" }},
		"removed": {named, func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "" }},
		"added":   {defaulted, func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "elsewhere" }},
	} {
		// The operator writes too (its finalizer): retry on conflicts.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := tenant(t, c.us)
			c.mod(cur)
			return k8s.Update(context.Background(), cur)
		})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.mongo.database is immutable: it can only be set when the UserService is created") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Other changes still go through.
	update(t, named, func(u *v1alpha1.UserService) { u.Spec.Suspend = true })
	update(t, defaulted, func(u *v1alpha1.UserService) { u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "m", Key: "u"} })
}

func TestMissingSecretIsReportedUntilItAppears(t *testing.T) {
	ns := namespace(t)
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	got := waitCondition(t, us, v1alpha1.ConditionDegraded, metav1.ConditionTrue, "SecretNotFound")
	if c := condition(got, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "secret "+ns+"/mongo not found") {
		t.Errorf("Ready = %+v", c)
	}
	if got.Status.Phase != v1alpha1.PhaseDegraded || got.Status.ObservedGeneration != 0 {
		t.Errorf("phase %s observedGeneration %d", got.Status.Phase, got.Status.ObservedGeneration)
	}
	waitEvent(t, us, "SecretNotFound", "mongo")
	if err := get(t, deploymentObj(), ns, "acme"); err == nil {
		t.Error("a Deployment was created without its MongoDB URI")
	}

	withFixtureURI(t, ns, "mongo", "uri")
	got = waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration %d of %d", got.Status.ObservedGeneration, got.Generation)
	}
	deployment(t, us)
}

// An autoscaled tenant always has a CPU request for the HPA to measure
// against: a spec that names none gets the default one, a zero one is
// refused, at creation as at update.
func TestAutoscaledTenantsHaveACPURequest(t *testing.T) {
	us := newTenant(t, func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
		u.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
	})
	eventually(t, "the Deployment has the default requests and the given limit", func() error {
		r := deployment(t, us).Spec.Template.Spec.Containers[0].Resources
		if r.Requests.Cpu().String() != render.DefaultCPURequest || r.Requests.Memory().String() != render.DefaultMemoryRequest ||
			r.Limits.Memory().String() != "512Mi" || !r.Limits.Cpu().IsZero() {
			return fmt.Errorf("resources %+v", r)
		}
		return nil
	})

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := tenant(t, us)
		cur.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")}
		return k8s.Update(context.Background(), cur)
	})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.autoscaling needs a CPU request above zero") {
		t.Errorf("a zero CPU request on an autoscaled tenant: err = %v", err)
	}
	// Without autoscaling a zero request is the user's to make.
	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = nil
		u.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")}
	})
	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
		u.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}
	})

	// A quantity may be a bare YAML number (cpu: 0, cpu: 1), which the rule
	// reads as well as a string.
	for _, c := range []struct {
		cpu any
		ok  bool
	}{{int64(0), false}, {int64(1), true}, {"0m", false}, {"100m", true}} {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "UserService",
			"metadata": map[string]any{"generateName": "numeric-", "namespace": us.Namespace},
			"spec": map[string]any{
				"autoscaling": map[string]any{"maxReplicas": int64(3)},
				"resources":   map[string]any{"requests": map[string]any{"cpu": c.cpu}},
			},
		}}
		err := k8s.Create(context.Background(), u)
		if c.ok && err != nil {
			t.Errorf("requests.cpu %#v: %v", c.cpu, err)
		}
		if !c.ok && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.autoscaling needs a CPU request above zero")) {
			t.Errorf("requests.cpu %#v: err = %v, want the CPU request rule", c.cpu, err)
		}
	}
}

// A tenant with the MinApp SDK dialect on, as the full sample has it, is
// accepted.
func TestHServeSpecIsAccepted(t *testing.T) {
	ns := namespace(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "sdk", Namespace: ns}}
	us.Spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: "a4d2d62965ddb57fa4d6",
		AllowedOrigins: []string{"https://app.acme.example.com", "http://localhost:8080"}}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatalf("a valid spec.api.hserve refused: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), us) })
}
