package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

// moveIn places a Ready dedicated tenant in pool (whose pods are given)
// and plays the pool applying its Secret; it returns the Secret.
func moveIn(t *testing.T, us *v1alpha1.UserService, pool string, pods []string) *corev1.Secret {
	t.Helper()
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = pool })
	s := poolSecret(t, pool, us)
	ackPods(t, pods, s.ResourceVersion)
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonPooled)
	return s
}

// TestTenantMovesIntoAPoolAndBack follows a tenant in and out of a pool:
// its Secret in the pool's namespace holds its whole configuration; its
// Service keeps selector and Deployment until every ready pool pod has
// applied that Secret, then keeps its name and ClusterIP with the pool's
// endpoints; a rotated Secret reaches the pool; moving out brings the
// Deployment back and returns the selector only once it is available, and
// the pool's endpoints go only once the tenant's own pods are endpoints.
func TestTenantMovesIntoAPoolAndBack(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	secret(t, ns, "smtp", map[string]string{"password": "pw-1"})
	us := newTenantIn(t, ns, "acme", func(u *v1alpha1.UserService) {
		u.Spec.Ingress = &v1alpha1.IngressSpec{Host: "acme.example.com"}
		u.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{}
		u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{
			Host: "smtp.example.com", From: "no-reply@example.com", Username: "u",
			PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "smtp", Key: "password"},
		}}
	})
	markAvailable(t, us)
	dedicatedSlice(t, us, "own01")
	dedicatedEndpoints(t, us)
	before := waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	clusterIP := service(t, us).Spec.ClusterIP
	newPool(t, "movers", []string{ns})
	pods := poolPods(t, "movers", 1, 2)

	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "movers" })
	s := poolSecret(t, "movers", us)
	var creds corev1.Secret
	if err := get(t, &creds, ns, render.CredentialsSecretName(us)); err != nil {
		t.Fatal(err)
	}
	var manifest v1alpha1.UserService
	if err := json.Unmarshal(s.Data[v1alpha1.PoolTenantManifestKey], &manifest); err != nil {
		t.Fatalf("manifest: %v\n%s", err, s.Data[v1alpha1.PoolTenantManifestKey])
	}
	if manifest.Name != "acme" || manifest.Namespace != ns || manifest.Spec.Mongo.Database != before.Status.Database ||
		manifest.Spec.API.MinApp.DefaultLimit != 20 || manifest.Spec.Verification.Mail == nil {
		t.Errorf("manifest is not the defaulted tenant: %s", s.Data[v1alpha1.PoolTenantManifestKey])
	}
	for env, want := range map[string]string{
		v1alpha1.EnvJWTKey:        string(creds.Data[render.KeyJWTKey]),
		v1alpha1.EnvAdminTokens:   string(creds.Data[render.KeyAdminTokens]),
		v1alpha1.EnvMongoURI:      string(creds.Data[render.KeyMongoURI]),
		v1alpha1.EnvMongoDatabase: before.Status.Database,
		v1alpha1.EnvSMTPPassword:  "pw-1",
	} {
		if got := string(s.Data[env]); got != want || want == "" {
			t.Errorf("%s = %q, want the tenant's %q", env, got, want)
		}
	}
	hosts := strings.Fields(string(s.Data[v1alpha1.PoolTenantHostsKey]))
	if want := []string{"acme", "acme." + ns, "acme." + ns + ".svc", "acme." + ns + ".svc.cluster.local", "acme.example.com"}; !slices.Equal(hosts, want) {
		t.Errorf("hosts %q, want %q", hosts, want)
	}
	if l := s.Labels; l[v1alpha1.PoolLabel] != "movers" || l[v1alpha1.PoolTenantNamespaceLabel] != ns || l[v1alpha1.PoolTenantNameLabel] != "acme" {
		t.Errorf("labels %v", l)
	}

	// Until the pool's pods have applied it, the tenant's own pods serve.
	got := waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingIn)
	if !strings.Contains(condition(got, v1alpha1.ConditionPlaced).Message, "has not applied") {
		t.Errorf("MovingIn says %q", condition(got, v1alpha1.ConditionPlaced).Message)
	}
	if len(service(t, us).Spec.Selector) == 0 {
		t.Fatal("the Service lost its selector before the pool applied the tenant")
	}
	deployment(t, us)
	ackPods(t, pods[:1], s.ResourceVersion)
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingIn)
	if len(service(t, us).Spec.Selector) == 0 {
		t.Fatal("the Service lost its selector while one pool pod had not applied the tenant")
	}
	ackPods(t, pods[1:], s.ResourceVersion)

	got = waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonPooled)
	svc := service(t, us)
	if len(svc.Spec.Selector) != 0 || svc.Spec.ClusterIP != clusterIP || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("pooled Service: selector %v, ClusterIP %s (was %s), ports %v", svc.Spec.Selector, svc.Spec.ClusterIP, clusterIP, svc.Spec.Ports)
	}
	var slice discoveryv1.EndpointSlice
	if err := get(t, &slice, ns, "acme"); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, e := range slice.Endpoints {
		addrs = append(addrs, e.Addresses...)
	}
	if !slices.Equal(addrs, []string{"10.77.1.1", "10.77.1.2"}) || slice.Labels[discoveryv1.LabelServiceName] != "acme" || *slice.Ports[0].Port != 8080 {
		t.Errorf("the tenant's EndpointSlice: %v, labels %v, ports %v", addrs, slice.Labels, slice.Ports)
	}
	// Kubernetes leaves the endpoints of a Service whose selector went
	// (kubernetes#118376): the operator withdraws them before the pods go.
	gone(t, "the EndpointSlice controller's slice", func() error { return get(t, &discoveryv1.EndpointSlice{}, ns, "acme-own01") })
	gone(t, "the Endpoints controller's Endpoints", func() error { return get(t, &corev1.Endpoints{}, ns, "acme") }) //nolint:staticcheck
	gone(t, "the dedicated Deployment", func() error { return get(t, &appsv1.Deployment{}, ns, "acme") })
	gone(t, "the dedicated PodDisruptionBudget", func() error { return get(t, &policyv1.PodDisruptionBudget{}, ns, "acme") })
	got = waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if got.Status.Endpoint != before.Status.Endpoint || got.Status.ReadyReplicas != 2 || got.Status.Pool != "movers" {
		t.Errorf("pooled status: endpoint %s (was %s), ready %d, pool %q", got.Status.Endpoint, before.Status.Endpoint, got.Status.ReadyReplicas, got.Status.Pool)
	}
	waitEvent(t, us, controllers.ReasonPooled, "movers")

	// A rotated Secret reaches the pool.
	var smtp corev1.Secret
	if err := get(t, &smtp, ns, "smtp"); err != nil {
		t.Fatal(err)
	}
	smtp.Data["password"] = []byte("pw-2")
	if err := k8s.Update(ctx, &smtp); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rotated password in the pool's Secret", func() error {
		if v := string(poolSecret(t, "movers", us).Data[v1alpha1.EnvSMTPPassword]); v != "pw-2" {
			return fmt.Errorf("%q", v)
		}
		return nil
	})

	// Out again: the Deployment comes back first.
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "" })
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingOut)
	deployment(t, us)
	if len(service(t, us).Spec.Selector) != 0 {
		t.Fatal("the Service got its selector back before the Deployment was available")
	}
	markAvailable(t, us)
	eventually(t, "the Service's selector is back", func() error {
		if svc := service(t, us); len(svc.Spec.Selector) == 0 || svc.Spec.ClusterIP != clusterIP {
			return fmt.Errorf("selector %v, ClusterIP %s", svc.Spec.Selector, svc.Spec.ClusterIP)
		}
		return nil
	})
	if err := get(t, &discoveryv1.EndpointSlice{}, ns, "acme"); err != nil {
		t.Fatalf("the pool's endpoints went before the tenant's own pods were endpoints: %v", err)
	}
	dedicatedSlice(t, us, "own02")
	got = waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonDedicated)
	gone(t, "the tenant's EndpointSlice of pool endpoints", func() error { return get(t, &discoveryv1.EndpointSlice{}, ns, "acme") })
	gone(t, "the tenant's Secret in the pool's namespace", func() error {
		return get(t, &corev1.Secret{}, operatorNamespace, v1alpha1.PoolTenantSecretName("movers", ns, "acme"))
	})
	if got.Status.Pool != "" {
		t.Errorf("status.pool = %q after moving out", got.Status.Pool)
	}
	eventually(t, "the PodDisruptionBudget is back", func() error { return get(t, &policyv1.PodDisruptionBudget{}, ns, "acme") })
}

// TestPooledTenantCleanupAndNoWrites: a converged pooled tenant costs no
// write on a resync; its slice follows the pool's ready pods; deleting it
// deletes its Secret in the pool's namespace.
func TestPooledTenantCleanupAndNoWrites(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	us := newTenantIn(t, ns, "acme")
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	newPool(t, "quiet", nil)
	pods := poolPods(t, "quiet", 2, 2)
	moveIn(t, us, "quiet", pods)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")

	counting := &writeCounter{Client: mgr.GetClient()}
	events := &eventCounter{EventRecorder: mgr.GetEventRecorder("userve-operator-test")}
	r := &controllers.UserServiceReconciler{
		Client: counting, APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Recorder: events,
		Databases: tenantdb.New(time.Second), ServerImage: serverImage, DefaultMongoURISecret: defaultMongo,
		Random: rand.Reader, ResyncInterval: time.Minute, RetryInterval: time.Second, PoolNamespace: operatorNamespace,
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(us)}
	eventually(t, "a reconcile without writes", func() error {
		counting.writes.Store(0)
		if _, err := r.Reconcile(ctx, req); err != nil {
			return err
		}
		if n := counting.writes.Load(); n > 0 {
			return fmt.Errorf("%d writes: %v", n, counting.log)
		}
		return nil
	})
	counting.writes.Store(0)
	events.n.Store(0)
	for range 3 {
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != time.Minute {
			t.Errorf("a converged pooled tenant requeues after %v, want the resync interval", res.RequeueAfter)
		}
	}
	if n := counting.writes.Load(); n != 0 || events.n.Load() != 0 {
		t.Errorf("converged reconciles made %d writes (%v) and %d events", n, counting.log, events.n.Load())
	}

	// A pool pod stops being ready: the tenant's endpoints follow.
	var ps discoveryv1.EndpointSlice
	if err := get(t, &ps, operatorNamespace, poolObjectName("quiet")+"-abcde"); err != nil {
		t.Fatal(err)
	}
	ps.Endpoints[1].Conditions.Ready = ptr(false)
	if err := k8s.Update(ctx, &ps); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tenant's slice drops the unready pod", func() error {
		var s discoveryv1.EndpointSlice
		if err := get(t, &s, ns, "acme"); err != nil {
			return err
		}
		if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0] != "10.77.2.1" {
			return fmt.Errorf("endpoints %v", s.Endpoints)
		}
		return nil
	})

	deleteTenant(t, us)
	gone(t, "the tenant's Secret in the pool's namespace", func() error {
		return get(t, &corev1.Secret{}, operatorNamespace, v1alpha1.PoolTenantSecretName("quiet", ns, "acme"))
	})
}

// TestPoolSeatsHoldUnderParallelPlacement: 32 tenants ask for a pool of 10
// seats at once; exactly 10 get one, the other 22 are refused PoolFull.
func TestPoolSeatsHoldUnderParallelPlacement(t *testing.T) {
	const tenants, seats = 32, 10
	ns := namespace(t)
	newPool(t, "crowded", []string{ns}, func(p *v1alpha1.UserServicePool) { p.Spec.MaxTenants = seats })
	var wg sync.WaitGroup
	all := make([]*v1alpha1.UserService, tenants)
	for i := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			all[i] = newTenantIn(t, ns, fmt.Sprintf("t%02d", i), func(u *v1alpha1.UserService) { u.Spec.Pool = "crowded" })
		}()
	}
	wg.Wait()
	placed, full := 0, 0
	for _, us := range all {
		eventually(t, "a placement decision for "+us.Name, func() error {
			got := tenant(t, us)
			c := condition(got, v1alpha1.ConditionPlaced)
			switch {
			case got.Status.Pool == "crowded" && c.Reason == controllers.ReasonMovingIn:
			case got.Status.Pool == "" && c.Reason == controllers.ReasonPoolFull:
			default:
				return fmt.Errorf("status.pool %q, Placed %s (%s)", got.Status.Pool, c.Reason, c.Message)
			}
			return nil
		})
		if tenant(t, us).Status.Pool == "crowded" {
			placed++
		} else {
			full++
		}
	}
	if placed != seats || full != tenants-seats {
		t.Errorf("%d placed and %d refused, want %d and %d", placed, full, seats, tenants-seats)
	}
	eventually(t, "the pool counts its tenants", func() error {
		var p v1alpha1.UserServicePool
		if err := k8s.Get(context.Background(), types.NamespacedName{Name: "crowded"}, &p); err != nil {
			return err
		}
		if p.Status.Tenants != seats {
			return fmt.Errorf("status.tenants %d", p.Status.Tenants)
		}
		return nil
	})
}

// TestDeletingAPoolMovesItsTenantsOutFirst: a deleted pool keeps its pods
// until its tenants are back on Deployments of their own, which happens
// without a moment where their Service has no serving endpoints.
func TestDeletingAPoolMovesItsTenantsOutFirst(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	us := newTenantIn(t, ns, "acme")
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	p := newPool(t, "leaving", nil)
	pods := poolPods(t, "leaving", 3, 1)
	moveIn(t, us, "leaving", pods)
	gone(t, "the dedicated Deployment", func() error { return get(t, &appsv1.Deployment{}, ns, "acme") })

	if err := k8s.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingOut)
	var still v1alpha1.UserServicePool
	if err := k8s.Get(ctx, types.NamespacedName{Name: "leaving"}, &still); err != nil || still.DeletionTimestamp.IsZero() {
		t.Fatalf("the pool went before its tenant left: %v", err)
	}
	if err := get(t, &appsv1.Deployment{}, operatorNamespace, poolObjectName("leaving")); err != nil {
		t.Fatalf("the pool's pods went before its tenant left: %v", err)
	}
	markAvailable(t, us)
	eventually(t, "the Service's selector is back", func() error {
		if len(service(t, us).Spec.Selector) == 0 {
			return fmt.Errorf("no selector")
		}
		return nil
	})
	dedicatedSlice(t, us, "own01")
	got := waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonPoolNotFound)
	if got.Status.Pool != "" || condition(got, v1alpha1.ConditionReady).Status != metav1.ConditionTrue {
		t.Errorf("after the pool's deletion: status.pool %q, Ready %+v", got.Status.Pool, condition(got, v1alpha1.ConditionReady))
	}
	gone(t, "the pool", func() error { return k8s.Get(ctx, types.NamespacedName{Name: "leaving"}, &v1alpha1.UserServicePool{}) })
}

// TestTenantMovesFromOnePoolToAnother: through a Deployment of its own,
// out of the first pool (its Secret there goes) and into the second.
func TestTenantMovesFromOnePoolToAnother(t *testing.T) {
	ns := namespace(t)
	us := newTenantIn(t, ns, "acme")
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	newPool(t, "from", nil)
	newPool(t, "to", nil)
	fromPods, toPods := poolPods(t, "from", 4, 1), poolPods(t, "to", 5, 1)
	moveIn(t, us, "from", fromPods)
	gone(t, "the dedicated Deployment", func() error { return get(t, &appsv1.Deployment{}, ns, "acme") })

	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "to" })
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingOut)
	markAvailable(t, us)
	dedicatedSlice(t, us, "own03")
	s := poolSecret(t, "to", us)
	gone(t, "the tenant's Secret in the first pool", func() error {
		return get(t, &corev1.Secret{}, operatorNamespace, v1alpha1.PoolTenantSecretName("from", ns, "acme"))
	})
	ackPods(t, toPods, s.ResourceVersion)
	got := waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonPooled)
	if got.Status.Pool != "to" {
		t.Errorf("status.pool = %q", got.Status.Pool)
	}
	var slice discoveryv1.EndpointSlice
	if err := get(t, &slice, ns, "acme"); err != nil || len(slice.Endpoints) != 1 || slice.Endpoints[0].Addresses[0] != "10.77.5.1" {
		t.Errorf("the tenant's endpoints are not the second pool's: %v %+v", err, slice.Endpoints)
	}
}
