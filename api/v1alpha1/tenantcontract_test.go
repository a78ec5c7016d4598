package v1alpha1_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"userve.dev/userve/api/v1alpha1"
)

// everyFeatureOn fills every optional part of a spec (pointers, structs) and
// gives each SecretKeyRef met on the way a name and key made of its JSON
// path, so that each reference is recognisable. It returns the paths.
func everyFeatureOn(t *testing.T) (*v1alpha1.UserServiceSpec, []string) {
	t.Helper()
	spec := &v1alpha1.UserServiceSpec{}
	var paths []string
	refType := reflect.TypeOf(v1alpha1.SecretKeyRef{})
	var fill func(v reflect.Value, path string)
	fill = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.Type().Elem().Kind() != reflect.Struct {
				return
			}
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), path)
		case reflect.Struct:
			if v.Type() == refType {
				v.Set(reflect.ValueOf(v1alpha1.SecretKeyRef{Name: path, Key: path + "#key"}))
				paths = append(paths, path)
				return
			}
			if v.Type().PkgPath() != refType.PkgPath() {
				return // metav1.Duration, resources: no references inside
			}
			for i := 0; i < v.NumField(); i++ {
				name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
				if name == "" || name == "-" {
					continue
				}
				fill(v.Field(i), path+"."+name)
			}
		}
	}
	fill(reflect.ValueOf(spec).Elem(), "spec")
	return spec, paths
}

// TestTenantSecretRefsNamesEverySecretOfTheSpec walks the spec's type, so
// that a SecretKeyRef added to the API without its place in the contract
// fails here rather than never reaching the tenant's pods.
func TestTenantSecretRefsNamesEverySecretOfTheSpec(t *testing.T) {
	spec, paths := everyFeatureOn(t)
	refs := v1alpha1.TenantSecretRefs(spec)
	var fields []string
	for _, r := range refs {
		fields = append(fields, r.Field)
		if r.Ref.Name != r.Field || r.Ref.Key != r.Field+"#key" {
			t.Errorf("%s (%s) reads %s/%s, not the reference at its own path", r.Field, r.Env, r.Ref.Name, r.Ref.Key)
		}
	}
	slices.Sort(paths)
	sorted := slices.Sorted(slices.Values(fields))
	if !slices.Equal(sorted, paths) {
		t.Fatalf("the contract lists %v,\nthe spec's type holds %v", sorted, paths)
	}
	// The order is the contract's: the first missing Secret is always the
	// same one, and the pods' environment never reorders (which would roll
	// every tenant).
	want := []string{v1alpha1.EnvMongoURI, v1alpha1.EnvAdminTokens, v1alpha1.EnvWebhookSecret, v1alpha1.EnvSMTPPassword, v1alpha1.EnvWeChatSecret}
	var envs []string
	for _, r := range refs {
		envs = append(envs, r.Env)
	}
	if !slices.Equal(envs, want) {
		t.Errorf("environment variables %v, want %v", envs, want)
	}
}

func TestTenantSecretRefsOfAPlainSpec(t *testing.T) {
	if refs := v1alpha1.TenantSecretRefs(&v1alpha1.UserServiceSpec{}); len(refs) != 0 {
		t.Errorf("a spec naming no Secret: %+v", refs)
	}
	// A webhook without a secretRef and mail without SMTP name nothing.
	spec := &v1alpha1.UserServiceSpec{Verification: v1alpha1.VerificationSpec{
		SMS:  &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: "https://sms.example.com/"}},
		Mail: &v1alpha1.MailSpec{},
	}}
	if refs := v1alpha1.TenantSecretRefs(spec); len(refs) != 0 {
		t.Errorf("deliveries without secrets: %+v", refs)
	}
}

func TestTenantSecretRefFor(t *testing.T) {
	spec := &v1alpha1.UserServiceSpec{AdminTokensSecretRef: &v1alpha1.SecretKeyRef{Name: "tokens", Key: "list"}}
	r, ok := v1alpha1.TenantSecretRefFor(spec, v1alpha1.EnvAdminTokens)
	if !ok || r.Ref.Name != "tokens" || r.Ref.Key != "list" || r.Field != "spec.adminTokensSecretRef" {
		t.Errorf("admin tokens: %+v %v", r, ok)
	}
	if r, ok := v1alpha1.TenantSecretRefFor(spec, v1alpha1.EnvMongoURI); ok {
		t.Errorf("no spec.mongo.uriSecretRef, yet %+v", r)
	}
}

func TestOwnedKinds(t *testing.T) {
	seen := map[string]bool{}
	var optional []string
	for _, k := range v1alpha1.OwnedKinds() {
		if k.Kind == "" || k.Version == "" || seen[k.String()] {
			t.Errorf("kind %v empty or listed twice", k.GroupVersionKind)
		}
		seen[k.String()] = true
		if k.Optional {
			optional = append(optional, k.Kind)
		}
	}
	// What every tenant has: the pods and what they mount and read.
	for _, kind := range []string{"ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment"} {
		if !slices.ContainsFunc(v1alpha1.OwnedKinds(), func(k v1alpha1.OwnedKind) bool { return k.Kind == kind && !k.Optional }) {
			t.Errorf("%s is not an always-present owned kind", kind)
		}
	}
	if want := []string{"Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "EndpointSlice"}; !slices.Equal(optional, want) {
		t.Errorf("optional kinds %v, want %v", optional, want)
	}
	// A caller changing its copy changes nobody else's.
	v1alpha1.OwnedKinds()[0].Kind = "Changed"
	if v1alpha1.OwnedKinds()[0].Kind == "Changed" {
		t.Error("OwnedKinds hands out a shared slice")
	}
}

func TestEnvironmentNamesAreDistinct(t *testing.T) {
	names := []string{v1alpha1.EnvMongoURI, v1alpha1.EnvMongoDatabase, v1alpha1.EnvAdminTokens, v1alpha1.EnvJWTKey,
		v1alpha1.EnvWebhookSecret, v1alpha1.EnvSMTPPassword, v1alpha1.EnvWeChatSecret, v1alpha1.EnvMemoryLimit, v1alpha1.EnvGOMAXPROCS}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		t.Errorf("two variables share a name: %v", names)
	}
}
