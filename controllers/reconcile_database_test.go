package controllers

import (
	"crypto/rand"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/tenantdb"
)

func TestDatabaseUserName(t *testing.T) {
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "acme"}}
	if got := DatabaseUserName(us); got != "userve.shop.acme" {
		t.Errorf("DatabaseUserName = %q", got)
	}
}

func TestPasswordOfReadsOnlyTheTenantsOwnUser(t *testing.T) {
	u := tenantdb.User{Database: "shop_acme", Name: "userve.shop.acme", Password: "s3cret"}
	uri, err := tenantdb.UserURI("mongodb://root:rootpw@db:27017/?authSource=admin", u)
	if err != nil {
		t.Fatal(err)
	}
	if got := passwordOf([]byte(uri), u.Name); got != "s3cret" {
		t.Errorf("passwordOf(own URI) = %q", got)
	}
	// A URI copied by an older operator (the default's administrator) is
	// not the tenant's: a new password is made, never the admin's reused.
	for _, other := range []string{"mongodb://root:rootpw@db:27017/?authSource=admin", "", "mongodb://db/", "garbage"} {
		if got := passwordOf([]byte(other), u.Name); got != "" {
			t.Errorf("passwordOf(%q) = %q, want none", other, got)
		}
	}
}

func TestNewPassword(t *testing.T) {
	a, err := newPassword(rand.Reader)
	b, _ := newPassword(rand.Reader)
	if err != nil || len(a) != 64 || a == b {
		t.Errorf("passwords %q %q (%v)", a, b, err)
	}
	if _, err := newPassword(brokenReader{}); err == nil {
		t.Error("no error without randomness")
	}
}

type brokenReader struct{}

func (brokenReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestIsolationCondition(t *testing.T) {
	c := isolationCondition(tenantdb.Confined, "u", "d")
	if c.Status != metav1.ConditionTrue || c.Reason != ReasonUserConfined {
		t.Errorf("confined: %+v", c)
	}
	c = isolationCondition(tenantdb.NotConfined, "u", "d")
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonStoreHasNoRoles || c.Type != v1alpha1.ConditionDatabaseIsolated {
		t.Errorf("not confined: %+v", c)
	}
}

func TestPodsLeft(t *testing.T) {
	d := func(gen, observed int64, replicas int32) appsv1.Deployment {
		var x appsv1.Deployment
		x.Generation, x.Status.ObservedGeneration, x.Status.Replicas = gen, observed, replicas
		return x
	}
	cases := []struct {
		name   string
		listed int
		d      appsv1.Deployment
		found  bool
		want   int
	}{
		{"no Deployment, no pods", 0, appsv1.Deployment{}, false, 0},
		{"no Deployment, a pod left", 1, appsv1.Deployment{}, false, 1},
		{"never reported on (envtest)", 0, d(2, 0, 0), true, 0},
		{"scale-down not seen yet", 0, d(3, 2, 0), true, 1},
		{"seen, two still running", 0, d(3, 3, 2), true, 2},
		{"seen, none left", 0, d(3, 3, 0), true, 0},
		{"seen, a terminating pod", 1, d(3, 3, 0), true, 1},
	}
	for _, c := range cases {
		if got := podsLeft(c.listed, c.d, c.found); got != c.want {
			t.Errorf("%s: podsLeft = %d, want %d", c.name, got, c.want)
		}
	}
}
