package runtime

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// A pool's Deployment, as the operator renders it, runs as local `pool`
// processes with the sandbox's kubeconfig and a Pod object each; its
// Service gets an EndpointSlice of the ready replicas; a tenant whose
// Service has the operator's slice gets a URL that reaches those replicas
// with the tenant's Service name as Host, and loses it with the slice.
func TestPoolReplicasServeTheirTenantsURLsByHost(t *testing.T) {
	h := start(t)
	h.rt.opts.Kubeconfig = filepath.Join(h.dir, "kubeconfig")
	ctx := context.Background()
	pool := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: "p-" + h.ns}, Spec: v1alpha1.UserServicePoolSpec{Namespace: h.ns}}
	h.must(h.c.Create(ctx, pool))
	t.Cleanup(func() { _ = h.c.Delete(context.Background(), pool) })
	h.must(h.c.Create(ctx, render.PoolServiceAccount(pool, h.ns)))
	h.must(h.c.Create(ctx, render.PoolService(pool, h.ns)))
	h.must(h.c.Create(ctx, render.PoolDeployment(pool, h.ns, "userve:dev")))
	name := render.PoolObjectName(pool)
	h.rolledOut(name, 2)

	pods := []string{name + "-0", name + "-1"}
	for _, p := range pods {
		h.must(h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: p}, &corev1.Pod{}))
	}
	h.eventually("the pool Service's slice lists both ready replicas", func() (bool, string) {
		var s discoveryv1.EndpointSlice
		if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: name + "-local"}, &s); err != nil {
			return false, err.Error()
		}
		var ready []string
		for _, e := range s.Endpoints {
			if e.TargetRef != nil && e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready = append(ready, e.TargetRef.Name)
			}
		}
		slices.Sort(ready)
		eps := render.ReadyEndpoints([]discoveryv1.EndpointSlice{s}, discoveryv1.AddressTypeIPv4)
		return s.Labels[discoveryv1.LabelServiceName] == name && slices.Equal(ready, pods) && len(eps) == 2, s.String()
	})

	// The operator's slice for a pooled tenant, naming the pool's pods.
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "shop"}}
	h.must(h.c.Create(ctx, us))
	slice := render.TenantEndpointSlice(us, discoveryv1.AddressTypeIPv4, nil)
	for i, p := range pods {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{"198.51.100." + string(rune('1'+i))},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: h.ns, Name: p},
		})
	}
	h.must(h.c.Create(ctx, slice))
	var shop Tenant
	h.eventually("shop is served by the pool", func() (bool, string) {
		shop = h.tenantState("shop")
		return shop.URL != "" && shop.Pool == pool.Name && shop.Ready == 2 && shop.RolledOut(), ""
	})
	seen := map[string]bool{}
	for range 8 {
		i, err := getInfo(t, shop.URL)
		if err != nil {
			t.Fatal(err)
		}
		if want := "shop." + h.ns + ".svc.cluster.local"; i.Host != want {
			t.Fatalf("the pool got Host %q, want %q", i.Host, want)
		}
		if i.Kube != h.rt.opts.Kubeconfig || i.Args[1] != "pool" {
			t.Fatalf("pool process: KUBECONFIG %q, args %q", i.Kube, i.Args)
		}
		seen[i.Pod] = true
	}
	if len(seen) != 2 {
		t.Errorf("requests reached pods %v, want both", seen)
	}

	h.must(h.c.Delete(ctx, slice))
	h.eventually("shop's URL closes with its slice", func() (bool, string) {
		u, _ := url.Parse(shop.URL)
		conn, err := net.Dial("tcp", u.Host)
		if err == nil {
			conn.Close()
		}
		return h.tenantState("shop").URL == "" && err != nil, ""
	})

	// A deleted pool takes its Deployment (and so its processes and their
	// Pods) along: the sandbox's garbage collector stands in for the cluster's.
	h.must(h.c.Delete(ctx, pool))
	h.eventually("the replicas' Pods go with the pool", func() (bool, string) {
		if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: name}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("deployment: %v", err)
		}
		for _, p := range pods {
			err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: p}, &corev1.Pod{})
			if !apierrors.IsNotFound(err) {
				return false, fmt.Sprintf("%s: %v", p, err)
			}
		}
		return true, ""
	})
}
