package integration_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"go.mongodb.org/mongo-driver/v2/event"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/tenantdb"
)

// commandCounter counts the MongoDB commands a reconciler sends, by name,
// leaving out the connection's own (handshake, authentication, ping).
type commandCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "hello", "isMaster", "ismaster", "saslStart", "saslContinue", "ping", "endSessions", "buildInfo":
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.seen == nil {
			c.seen = map[string]int{}
		}
		c.seen[e.CommandName]++
	}}
}

func (c *commandCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.seen
	c.seen = nil
	return out
}

// TestPooledTenantsAreCheapAtScale: what 10,000 pooled tenants cost the
// API server and MongoDB per tenant (docs/bench.md, "Operator").
//   - A tenant born in a pool gets a Service without a selector from the
//     start: a selector would have the EndpointSlice controller write a
//     slice of no pods for the move to withdraw (two more writes each).
//   - Reconciles that follow the first repeat no database ownership or user
//     check (on FerretDB a user lookup reads every stored user), only the
//     ping.
//   - A pool pod turning unready rewrites each tenant's EndpointSlice
//     without an event on each tenant (10,000 events for one pod).
func TestPooledTenantsAreCheapAtScale(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	newPool(t, "scale", []string{ns})
	pods := poolPods(t, "scale", 3, 2)
	us := newTenantIn(t, ns, "acme", func(u *v1alpha1.UserService) { u.Spec.Pool = "scale" })

	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingIn)
	svc := service(t, us)
	if len(svc.Spec.Selector) != 0 {
		t.Errorf("a tenant born in a pool got a Service selecting pods it will never have: %v", svc.Spec.Selector)
	}
	// Nor the identity and configuration of pods it has none of.
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &corev1.ConfigMap{}} {
		name := "acme"
		if _, ok := obj.(*corev1.ConfigMap); ok {
			name = "acme-config"
		}
		if err := get(t, obj, ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("a tenant born in a pool got %T %s (err %v)", obj, name, err)
		}
	}
	s := poolSecret(t, "scale", us)
	ackPods(t, pods, s.ResourceVersion)
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonPooled)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if svc := service(t, us); len(svc.Spec.Selector) != 0 {
		t.Errorf("the pooled tenant's Service has a selector: %v", svc.Spec.Selector)
	}

	commands := &commandCounter{}
	counting := &writeCounter{Client: mgr.GetClient()}
	events := &eventCounter{EventRecorder: mgr.GetEventRecorder("userve-operator-test")}
	live := &tenantReads{Reader: mgr.GetAPIReader()}
	r := &controllers.UserServiceReconciler{
		Client: counting, APIReader: live, Scheme: mgr.GetScheme(), Recorder: events,
		Databases: tenantdb.New(time.Second, tenantdb.WithMonitor(commands.monitor())), ServerImage: serverImage,
		DefaultMongoURISecret: defaultMongo, Random: rand.Reader, ResyncInterval: time.Hour, RetryInterval: time.Second,
		PoolNamespace: operatorNamespace,
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
	if first := commands.take(); first["usersInfo"] == 0 {
		t.Errorf("the reconciler's first reconcile did not check the tenant's database user: %v", first)
	}
	events.n.Store(0)
	live.n.Store(0)
	for range 3 {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	// The cache has seen the reconciler's last write of the tenant: no GET.
	if n := live.n.Load(); n != 0 {
		t.Errorf("3 converged reconciles read the UserService from the API server %d times", n)
	}
	if again := commands.take(); len(again) > 0 {
		t.Errorf("reconciles of a checked tenant sent MongoDB commands besides the ping: %v", again)
	}
	if n := counting.writes.Load(); n != 0 || events.n.Load() != 0 {
		t.Errorf("converged reconciles made %d writes (%v) and %d events", n, counting.log, events.n.Load())
	}

	// A pool pod turns unready: the tenant's slice follows, and the
	// tenant gets no event for it. The ConfigMap change after it is the
	// marker that the operator's events up to there are written.
	var ps discoveryv1.EndpointSlice
	if err := get(t, &ps, operatorNamespace, poolObjectName("scale")+"-abcde"); err != nil {
		t.Fatal(err)
	}
	ps.Endpoints[1].Conditions.Ready = ptr(false)
	if err := k8s.Update(ctx, &ps); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tenant's slice drops the unready pod", func() error {
		var sl discoveryv1.EndpointSlice
		if err := get(t, &sl, ns, "acme"); err != nil {
			return err
		}
		if len(sl.Endpoints) != 1 {
			return fmt.Errorf("endpoints %v", sl.Endpoints)
		}
		return nil
	})
	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "vip", Type: v1alpha1.FieldBoolean}}
	})
	waitEvent(t, us, "Updated", "Secret scale."+ns+".acme")
	for reason, notes := range eventReasons(t, us) {
		for _, note := range notes {
			if strings.Contains(note, "EndpointSlice") && reason != "Created" {
				t.Errorf("the pool's endpoints changing made an event on the tenant: %s %q", reason, note)
			}
		}
	}
}

// TestPoolCountsItsTenantsOncePerSecond: 30 tenants placed in a pool at
// once do not rewrite the pool's status once each: its tenant count is
// written at most about once a second (10,000 placements rewrote it 6,800
// times), and ends right.
func TestPoolCountsItsTenantsOncePerSecond(t *testing.T) {
	const tenants = 30
	ctx := context.Background()
	ns := namespace(t)
	newPool(t, "tally", []string{ns})
	poolPods(t, "tally", 4, 1)
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pool is reconciled", func() error {
		var p v1alpha1.UserServicePool
		if err := k8s.Get(ctx, client.ObjectKey{Name: "tally"}, &p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("observed generation %d", p.Status.ObservedGeneration)
		}
		return nil
	})
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w, err := wc.Watch(wctx, &v1alpha1.UserServicePoolList{}, client.MatchingFields{"metadata.name": "tally"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			newTenantIn(t, ns, fmt.Sprintf("c%02d", i), func(u *v1alpha1.UserService) { u.Spec.Pool = "tally" })
		}()
	}
	wg.Wait()
	writes, counted := 0, int32(0)
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*v1alpha1.UserServicePool)
		if !ok {
			continue
		}
		writes++
		if counted = p.Status.Tenants; counted == tenants {
			break
		}
	}
	took := time.Since(start)
	if counted != tenants {
		t.Fatalf("the pool counted %d tenants after %v, want %d", counted, took, tenants)
	}
	if limit := int(took/time.Second) + 3; writes > limit {
		t.Errorf("the pool was written %d times in %v while %d tenants were placed, want at most %d (about one a second)",
			writes, took.Round(time.Millisecond), tenants, limit)
	}
}

// tenantReads counts the UserServices read from the API server.
type tenantReads struct {
	client.Reader
	n atomic.Int64
}

func (c *tenantReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v1alpha1.UserService); ok {
		c.n.Add(1)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A tenant born in a pool that the pool acknowledges at once reports its
// status once, Ready and Pooled, without a MovingIn status before it: the
// first status is held back for a moment while the pool takes the tenant
// (a status write is the costliest request a tenant makes of the API
// server).
func TestAPromptlyPlacedTenantReportsItsStatusOnce(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	newPool(t, "prompt", []string{ns})
	pods := poolPods(t, "prompt", 3, 2)
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1alpha1.UserServiceList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	us := newTenantIn(t, ns, "acme", func(u *v1alpha1.UserService) { u.Spec.Pool = "prompt" })
	s := poolSecret(t, "prompt", us)
	ackPods(t, pods, s.ResourceVersion)

	var placed []string // the Placed reason of each status the tenant went through
	var last v1alpha1.UserServiceStatus
	deadline := time.After(60 * time.Second)
	for ready := false; !ready; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			u, isTenant := ev.Object.(*v1alpha1.UserService)
			if !isTenant || u.Name != us.Name || equality.Semantic.DeepEqual(u.Status, last) {
				continue
			}
			last = *u.Status.DeepCopy()
			reason := "(none)"
			if c := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionPlaced); c != nil {
				reason = c.Reason
			}
			placed = append(placed, reason)
			ready = meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReady)
		case <-deadline:
			t.Fatalf("not Ready; its statuses' Placed %v", placed)
		}
	}
	if !slices.Equal(placed, []string{controllers.ReasonPooled}) {
		t.Errorf("an at once acknowledged tenant's statuses had Placed %v, want one status, %s", placed, controllers.ReasonPooled)
	}
}
