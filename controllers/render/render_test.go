package render

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"userve.dev/userve/api/v1alpha1"
)

// tenant is a UserService as the API server returns it: defaulted, with a UID.
func tenant(mutate ...func(*v1alpha1.UserService)) *v1alpha1.UserService {
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "shop", UID: types.UID("uid-1")}}
	v1alpha1.SetDefaults(us)
	for _, m := range mutate {
		m(us)
	}
	return us
}

func TestLabelsCarryTheSelectorAndManagedBy(t *testing.T) {
	us := tenant()
	l := Labels(us)
	for k, v := range SelectorLabels(us) {
		if l[k] != v {
			t.Errorf("label %s = %q, want the selector's %q", k, l[k], v)
		}
	}
	if l[LabelManagedBy] != ManagedBy {
		t.Errorf("managed-by = %q, want %q (the operator's cache selects on it)", l[LabelManagedBy], ManagedBy)
	}
	if l[LabelName] == "userve" {
		t.Error("tenant pods must not share app.kubernetes.io/name with the operator's pods")
	}
}

func TestSelectorParsesBackToTheSelectorLabels(t *testing.T) {
	us := tenant()
	sel, err := labels.Parse(Selector(us))
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(Labels(us))) {
		t.Errorf("selector %q does not match the pods' labels", Selector(us))
	}
	other := tenant(func(u *v1alpha1.UserService) { u.Name = "other" })
	if sel.Matches(labels.Set(Labels(other))) {
		t.Errorf("selector %q matches another tenant's pods", Selector(us))
	}
}

func TestOwnerReferenceMakesTheTenantController(t *testing.T) {
	ref := OwnerReference(tenant())
	if ref.APIVersion != "miniapp.userve.dev/v1alpha1" || ref.Kind != "UserService" || ref.Name != "acme" || ref.UID != "uid-1" {
		t.Errorf("owner reference = %+v", ref)
	}
	if ref.Controller == nil || !*ref.Controller || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("owner reference must be the controller and block owner deletion: %+v", ref)
	}
}

func TestDatabaseName(t *testing.T) {
	if got, _ := DatabaseName(tenant()); got != "shop_acme" {
		t.Errorf("default database = %q, want shop_acme", got)
	}
	if got, _ := DatabaseName(tenant(func(u *v1alpha1.UserService) { u.Namespace = "" })); got != "default_acme" {
		t.Errorf("database without namespace = %q, want default_acme", got)
	}
	if got, _ := DatabaseName(tenant(func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = "acme-users" })); got != "acme-users" {
		t.Errorf("spec.mongo.database = %q, want acme-users", got)
	}
	long := tenant(func(u *v1alpha1.UserService) { u.Namespace = strings.Repeat("n", 40); u.Name = strings.Repeat("a", 30) })
	if _, err := DatabaseName(long); err == nil || !strings.Contains(err.Error(), "spec.mongo.database") {
		t.Errorf("a default name over %d characters must be refused, telling to set spec.mongo.database; got %v", MaxDatabaseName, err)
	}
}

func TestEndpoint(t *testing.T) {
	cases := []struct {
		ingress *v1alpha1.IngressSpec
		want    string
	}{
		{nil, "http://acme.shop.svc:8080"},
		{&v1alpha1.IngressSpec{Host: "users.example.com"}, "http://users.example.com"},
		{&v1alpha1.IngressSpec{Host: "users.example.com", TLSSecretName: "tls"}, "https://users.example.com"},
	}
	for _, c := range cases {
		us := tenant(func(u *v1alpha1.UserService) { u.Spec.Ingress = c.ingress })
		if got := Endpoint(us); got != c.want {
			t.Errorf("Endpoint with ingress %+v = %q, want %q", c.ingress, got, c.want)
		}
	}
}

// assertOwned checks the metadata every builder gives its object.
func assertOwned(t *testing.T, us *v1alpha1.UserService, m metav1.Object, name string) {
	t.Helper()
	if m.GetName() != name || m.GetNamespace() != us.Namespace {
		t.Errorf("object is %s/%s, want %s/%s", m.GetNamespace(), m.GetName(), us.Namespace, name)
	}
	if m.GetLabels()[LabelManagedBy] != ManagedBy || m.GetLabels()[LabelInstance] != us.Name {
		t.Errorf("labels = %v", m.GetLabels())
	}
	refs := m.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != us.UID || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references = %+v, want the tenant as controller", refs)
	}
}

// A namespace cannot name the default database of another namespace's
// UserService (which may not exist yet), in any case; its own prefix, names
// without "_" and a name a tenant already uses stay allowed.
func TestDefaultDatabaseNamesAreReservedPerNamespace(t *testing.T) {
	in := func(ns, db, recorded string) (string, error) {
		return DatabaseName(tenant(func(u *v1alpha1.UserService) {
			u.Namespace, u.Spec.Mongo.Database, u.Status.Database = ns, db, recorded
		}))
	}
	for _, db := range []string{"victim_app", "VICTIM_App", "victim_a-b", "victim-2_x9"} {
		if _, err := in("evil", db, ""); err == nil || !strings.Contains(err.Error(), "reserved for namespace victim") {
			t.Errorf("namespace evil took %q: %v", db, err)
		}
	}
	for _, tc := range []struct{ ns, db, recorded string }{
		{"shop", "shop_app", ""},
		{"shop", "SHOP_app", ""},
		{"shop", "acme-users", ""},
		{"shop", "-users_x", ""},     // "-users" is no namespace name
		{"shop", "del_delete_1", ""}, // "delete_1" is no UserService name
		{"shop", "my_2app", ""},      // nor is "2app"
		{"shop", "victim_", ""},
		{"shop", "legacy_app", "legacy_app"},
	} {
		if got, err := in(tc.ns, tc.db, tc.recorded); err != nil || got != tc.db {
			t.Errorf("namespace %s, database %q (recorded %q): %q, %v", tc.ns, tc.db, tc.recorded, got, err)
		}
	}
}
