package render

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
)

func TestServerConfigIsAUserServiceManifestTheServerCanRead(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "level", Type: v1alpha1.FieldInteger, Required: true}}
		u.Spec.API.Plus.TokenTTL = &metav1.Duration{Duration: 10 * time.Minute}
		u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: "smtp.example.com", From: "a@example.com"}}
	})
	data, err := ServerConfig(us, "shop_acme")
	if err != nil {
		t.Fatal(err)
	}
	// What `userve serve --config` does: decode strictly into the API type.
	var got v1alpha1.UserService
	if err := yaml.UnmarshalStrict(data, &got); err != nil {
		t.Fatalf("the rendered config is not a UserService manifest: %v\n%s", err, data)
	}
	if got.APIVersion != "miniapp.userve.dev/v1alpha1" || got.Kind != "UserService" || got.Name != "acme" || got.Namespace != "shop" {
		t.Errorf("type and metadata = %s %s %s/%s", got.APIVersion, got.Kind, got.Namespace, got.Name)
	}
	if got.Spec.Mongo.Database != "shop_acme" {
		t.Errorf("spec.mongo.database = %q, want the database in use", got.Spec.Mongo.Database)
	}
	if len(got.Spec.Profile.CustomFields) != 1 || got.Spec.Profile.CustomFields[0].Name != "level" || !got.Spec.Profile.CustomFields[0].Required {
		t.Errorf("custom fields = %+v", got.Spec.Profile.CustomFields)
	}
	if got.Spec.API.Plus.TokenTTL.Duration != 10*time.Minute {
		t.Errorf("tokenTTL = %v", got.Spec.API.Plus.TokenTTL)
	}
	// Defaults are filled in, so the file means the same without an API server.
	if got.Spec.API.MinApp.MaxLimit != v1alpha1.DefaultMinAppMaxLimit || got.Spec.Verification.Mail.SMTP.Port != v1alpha1.DefaultSMTPPort {
		t.Errorf("defaults missing: minapp.maxLimit=%d smtp.port=%d", got.Spec.API.MinApp.MaxLimit, got.Spec.Verification.Mail.SMTP.Port)
	}
}

func TestServerConfigLeavesOutWhatOnlyTheOperatorUses(t *testing.T) {
	three := int32(3)
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Replicas = &three
		u.Spec.Image = "example.com/userve:1"
		u.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "tokens", Key: "t"}
		u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
	})
	data, err := ServerConfig(us, "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"replicas", "image", "adminTokensSecretRef", "uriSecretRef", "deletionPolicy", "resources", "podTemplate"} {
		if strings.Contains(string(data), absent) {
			t.Errorf("config holds %q; scaling or operator settings must not change the config hash:\n%s", absent, data)
		}
	}
	base, _ := ServerConfig(tenant(), "db")
	if string(base) != string(data) {
		t.Errorf("operator-only fields changed the config:\n%s\nvs\n%s", base, data)
	}
}

func TestServerConfigIsDeterministic(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "a", Type: v1alpha1.FieldString}, {Name: "b", Type: v1alpha1.FieldDate}}
	})
	a, _ := ServerConfig(us, "db")
	b, _ := ServerConfig(us.DeepCopy(), "db")
	if string(a) != string(b) {
		t.Fatalf("two renders differ:\n%s\n%s", a, b)
	}
}

func TestConfigMapHoldsTheConfig(t *testing.T) {
	us := tenant()
	cm := ConfigMap(us, []byte("x: 1\n"))
	assertOwned(t, us, cm, "acme-config")
	if cm.Data[ConfigKey] != "x: 1\n" || len(cm.Data) != 1 {
		t.Errorf("data = %v, want only %s", cm.Data, ConfigKey)
	}
}

func TestConfigHashChangesWithConfigAndSecretsOnly(t *testing.T) {
	secrets := map[string][]byte{v1alpha1.EnvJWTKey: []byte("k"), v1alpha1.EnvAdminTokens: []byte("t")}
	h := ConfigHash([]byte("c"), secrets)
	if h != ConfigHash([]byte("c"), map[string][]byte{v1alpha1.EnvAdminTokens: []byte("t"), v1alpha1.EnvJWTKey: []byte("k")}) {
		t.Error("hash depends on map order")
	}
	if h == ConfigHash([]byte("c2"), secrets) {
		t.Error("config change kept the hash")
	}
	if h == ConfigHash([]byte("c"), map[string][]byte{v1alpha1.EnvJWTKey: []byte("k2"), v1alpha1.EnvAdminTokens: []byte("t")}) {
		t.Error("secret change kept the hash")
	}
	// Boundaries are part of the hash: moving bytes between values changes it.
	if ConfigHash(nil, map[string][]byte{"A": []byte("xy"), "B": nil}) == ConfigHash(nil, map[string][]byte{"A": []byte("x"), "B": []byte("y")}) {
		t.Error("hash is ambiguous across value boundaries")
	}
	if len(h) != 32 {
		t.Errorf("hash %q: want 32 hex characters", h)
	}
}
