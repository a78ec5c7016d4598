package integration_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
)

func TestPoolObjectsAndStatus(t *testing.T) {
	ctx := context.Background()
	idle := metav1.Duration{Duration: 600e9}
	newPool(t, "objects", nil, func(p *v1alpha1.UserServicePool) {
		p.Spec.IdleTimeout = &idle
		p.Spec.Egress.AllowCIDRs = []string{"10.0.3.7/32"}
	})
	name := poolObjectName("objects")
	key := types.NamespacedName{Namespace: operatorNamespace, Name: name}
	var d appsv1.Deployment
	eventually(t, "the pool's Deployment", func() error { return k8s.Get(ctx, key, &d) })
	c := d.Spec.Template.Spec.Containers[0]
	want := []string{"pool", "--pool", "objects", "--listen", ":8080", "--metrics-listen", ":9090", "--idle-timeout", "10m0s", "--allow-egress", "10.0.3.7/32"}
	if !slices.Equal(c.Args, want) || c.Image != serverImage || *d.Spec.Replicas != 2 {
		t.Errorf("pool container %q %v, replicas %d", c.Image, c.Args, *d.Spec.Replicas)
	}
	if c.SecurityContext == nil || !*c.SecurityContext.ReadOnlyRootFilesystem || d.Spec.Template.Spec.ServiceAccountName != name {
		t.Errorf("pool pod is not hardened or runs as %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}} {
		eventually(t, fmt.Sprintf("the pool's %T", obj), func() error { return k8s.Get(ctx, key, obj) })
		if refs := obj.GetOwnerReferences(); len(refs) != 1 || refs[0].Kind != "UserServicePool" || refs[0].Name != "objects" {
			t.Errorf("%T owners %v", obj, refs)
		}
	}
	// The pods read Secrets and patch pods of their namespace, nothing else.
	var role rbacv1.Role
	if err := k8s.Get(ctx, key, &role); err != nil {
		t.Fatal(err)
	}
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{""}) || len(r.ResourceNames) != 0 ||
			!(slices.Equal(r.Resources, []string{"secrets"}) && slices.Equal(r.Verbs, []string{"get", "list", "watch"}) ||
				slices.Equal(r.Resources, []string{"pods"}) && slices.Equal(r.Verbs, []string{"get", "patch"})) {
			t.Errorf("pool Role rule %+v", r)
		}
	}

	markPoolAvailable(t, "objects")
	eventually(t, "the pool is Ready", func() error {
		var p v1alpha1.UserServicePool
		if err := k8s.Get(ctx, types.NamespacedName{Name: "objects"}, &p); err != nil {
			return err
		}
		c := condition(&v1alpha1.UserService{Status: v1alpha1.UserServiceStatus{Conditions: p.Status.Conditions}}, v1alpha1.ConditionReady)
		if c.Status != metav1.ConditionTrue || p.Status.ReadyReplicas != 2 || p.Status.ObservedGeneration != p.Generation || p.Status.Namespace != operatorNamespace {
			return fmt.Errorf("Ready %s (%s), ready %d, status %+v", c.Status, c.Message, p.Status.ReadyReplicas, p.Status)
		}
		return nil
	})
	// A converged pool costs no write on a resync.
	counting := &writeCounter{Client: mgr.GetClient()}
	r := &controllers.PoolReconciler{Client: counting, APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("userve-operator-test"), ServerImage: serverImage, DefaultNamespace: operatorNamespace}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "objects"}}
	eventually(t, "a pool reconcile without writes", func() error {
		counting.writes.Store(0)
		if _, err := r.Reconcile(ctx, req); err != nil {
			return err
		}
		if n := counting.writes.Load(); n > 0 {
			return fmt.Errorf("%d writes: %v", n, counting.log)
		}
		return nil
	})
	for range 3 {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if n := counting.writes.Load(); n != 0 {
		t.Errorf("converged pool reconciles made %d writes: %v", n, counting.log)
	}

	out, err := kubectl(t, "get", "usp", "objects")
	if err != nil {
		t.Fatalf("kubectl get usp: %v\n%s", err, out)
	}
	for _, col := range []string{"TENANTS", "READY", "AGE"} {
		if !strings.Contains(out, col) {
			t.Errorf("kubectl get usp lacks %s:\n%s", col, out)
		}
	}

	// One replica: no disruption budget (it would block node drains).
	var p v1alpha1.UserServicePool
	if err := k8s.Get(ctx, types.NamespacedName{Name: "objects"}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Replicas = ptr(int32(1))
	if err := k8s.Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	gone(t, "the pool's PodDisruptionBudget", func() error { return k8s.Get(ctx, key, &policyv1.PodDisruptionBudget{}) })
}

func TestPoolValidation(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		mutate func(*v1alpha1.UserServicePool)
		msg    string
	}{
		"replicas and autoscaling": {func(p *v1alpha1.UserServicePool) {
			p.Spec.Replicas = ptr(int32(2))
			p.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 3}
		}, "mutually exclusive"},
		"bad cidr":      {func(p *v1alpha1.UserServicePool) { p.Spec.Egress.AllowCIDRs = []string{"10.0.0.1"} }, "must be CIDRs"},
		"short idle":    {func(p *v1alpha1.UserServicePool) { p.Spec.IdleTimeout = &metav1.Duration{Duration: 1e6} }, "between 1s and 24h"},
		"zero tenants":  {func(p *v1alpha1.UserServicePool) { p.Spec.MaxTenants = -1 }, "maxTenants"},
		"bad namespace": {func(p *v1alpha1.UserServicePool) { p.Spec.Namespace = "Not_A_Label" }, "spec.namespace"},
		"bad selector": {func(p *v1alpha1.UserServicePool) {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Exists", Values: []string{"a"}}}}
		}, "namespaceSelector.matchExpressions"},
	} {
		p := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: "invalid"}}
		tc.mutate(p)
		err := k8s.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err %v, want %q", name, err, tc.msg)
			_ = k8s.Delete(ctx, p)
		}
	}
	long := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 41)}}
	if err := k8s.Create(ctx, long); err == nil || !strings.Contains(err.Error(), "at most 40") {
		t.Errorf("a 41-character name: %v", err)
	}
	p := newPool(t, "immutable", nil, func(p *v1alpha1.UserServicePool) { p.Spec.Namespace = operatorNamespace })
	p.Spec.Namespace = "elsewhere"
	if err := k8s.Update(ctx, p); err == nil || !strings.Contains(err.Error(), "spec.namespace is immutable") {
		t.Errorf("moving a pool's namespace: %v", err)
	}
}

// TestPlacementRefusalsKeepTheTenantWhereItIs: a missing pool, a namespace
// the pool does not select and a full pool each give Placed=False with its
// reason and a Warning event; the tenant keeps its Deployment and its
// Service's selector, and stays Ready.
func TestPlacementRefusalsKeepTheTenantWhereItIs(t *testing.T) {
	us := newTenant(t)
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")

	check := func(reason string) {
		t.Helper()
		got := waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, reason)
		waitEvent(t, us, reason, "the tenant stays where it is")
		if c := condition(got, v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
			t.Errorf("%s: Ready %s (%s)", reason, c.Status, c.Message)
		}
		if got.Status.Pool != "" {
			t.Errorf("%s: status.pool = %q", reason, got.Status.Pool)
		}
		deployment(t, us)
		if len(service(t, us).Spec.Selector) == 0 {
			t.Errorf("%s: the Service lost its selector", reason)
		}
	}
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "nowhere" })
	check(controllers.ReasonPoolNotFound)

	newPool(t, "closed", []string{"some-other-namespace"})
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "closed" })
	check(controllers.ReasonNamespaceNotAllowed)

	newPool(t, "onlyone", nil, func(p *v1alpha1.UserServicePool) { p.Spec.MaxTenants = 1 })
	first := newTenantIn(t, namespace(t), "first", func(u *v1alpha1.UserService) { u.Spec.Pool = "onlyone" })
	eventually(t, "the first tenant holds the seat", func() error {
		if p := tenant(t, first).Status.Pool; p != "onlyone" {
			return fmt.Errorf("status.pool %q", p)
		}
		return nil
	})
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "onlyone" })
	check(controllers.ReasonPoolFull)
	var s corev1.Secret
	if err := get(t, &s, operatorNamespace, v1alpha1.PoolTenantSecretName("onlyone", us.Namespace, us.Name)); err == nil {
		t.Error("a refused tenant has a Secret in the pool's namespace")
	}
}

// newTenantIn creates a UserService named name in namespace ns.
func newTenantIn(t *testing.T, ns, name string, mutate ...func(*v1alpha1.UserService)) *v1alpha1.UserService {
	t.Helper()
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	for _, m := range mutate {
		m(us)
	}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatalf("create UserService: %v", err)
	}
	return us
}
