package integration_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
)

// tenantAt creates a tenant whose spec.mongo.uriSecretRef holds uri.
func tenantAt(t *testing.T, uri string) *v1alpha1.UserService {
	t.Helper()
	ns := namespace(t)
	secret(t, ns, "own-mongo", map[string]string{"uri": uri})
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "own-mongo", Key: "uri"}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTenant(t, us) })
	return us
}

// countingListener counts the connections made to it.
func countingListener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

// A URI that would make the operator send its service-account token is
// refused: DatabaseReady=False, reason InvalidMongoURI, naming the
// mechanism, an event, and no connection to the host it names.
func TestRefusedTenantURIIsNeverDialed(t *testing.T) {
	addr, accepted := countingListener(t)
	us := tenantAt(t, "mongodb://"+addr+"/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s")

	got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, controllers.ReasonInvalidMongoURI)
	if c := condition(got, v1alpha1.ConditionDatabaseReady); !strings.Contains(c.Message, "authMechanism=MONGODB-OIDC") {
		t.Errorf("the message does not name the refused mechanism: %s", c.Message)
	}
	if c := condition(got, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonInvalidMongoURI {
		t.Errorf("Ready = %+v", c)
	}
	waitEvent(t, us, controllers.ReasonInvalidMongoURI, "MONGODB-OIDC")
	if err := get(t, deploymentObj(), us.Namespace, us.Name); err == nil {
		t.Error("a Deployment was created for a refused URI")
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the host of a refused URI got %d connections from the operator", n)
	}
}

// No port-scan oracle: a closed port and a port serving HTTP give the same
// status texts and events, word for word.
func TestTenantURIFailuresReadTheSameInStatus(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()
	web := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(web.Close)

	a := tenantAt(t, "mongodb://u:p@"+closedAddr+"/")
	b := tenantAt(t, "mongodb://u:p@"+strings.TrimPrefix(web.URL, "http://")+"/")
	var texts [2]map[string]string
	for i, us := range []*v1alpha1.UserService{a, b} {
		got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, controllers.ReasonDatabaseUnreachable)
		texts[i] = map[string]string{}
		for _, typ := range []string{v1alpha1.ConditionDatabaseReady, v1alpha1.ConditionReady, v1alpha1.ConditionDegraded, v1alpha1.ConditionProgressing} {
			c := condition(got, typ)
			texts[i][typ] = c.Reason + ": " + c.Message
		}
		waitEvent(t, us, controllers.ReasonDatabaseUnreachable, "")
		notes := eventReasons(t, us)[controllers.ReasonDatabaseUnreachable]
		slices.Sort(notes)
		texts[i]["events"] = strings.Join(slices.Compact(notes), " | ")
	}
	for k, v := range texts[0] {
		if texts[1][k] != v {
			t.Errorf("%s differs:\n closed port: %s\n HTTP server: %s", k, v, texts[1][k])
		}
	}
	for _, s := range texts[0] {
		for _, leak := range []string{"refused", "connection", "127.0.0.1", "HTTP", "EOF", "timeout", "deadline"} {
			if strings.Contains(s, leak) {
				t.Errorf("status tells the failure's kind (%q): %s", leak, s)
			}
		}
	}
}
