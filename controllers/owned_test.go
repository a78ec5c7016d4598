package controllers

import (
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// TestObjectsOwnedAreTheContractsKinds: what the operator watches and caches
// is exactly the contract's list, kind for kind.
func TestObjectsOwnedAreTheContractsKinds(t *testing.T) {
	scheme := NewScheme()
	var got, want []schema.GroupVersionKind
	for _, obj := range objectsOwned() {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, gvk)
	}
	for _, k := range v1alpha1.OwnedKinds() {
		want = append(want, k.GroupVersionKind)
	}
	if !slices.Equal(got, want) {
		t.Errorf("objects of %v, want %v", got, want)
	}
}

// TestOptionalRenderersAreTheContractsOptionalKinds: with every optional
// object asked for, the renderers make one object of each optional kind of
// the contract, none other (applyObjects refuses others).
func TestOptionalRenderersAreTheContractsOptionalKinds(t *testing.T) {
	us := &v1alpha1.UserService{}
	us.Name, us.Namespace = "acme", "shop"
	v1alpha1.SetDefaults(us)
	us.Spec.Ingress = &v1alpha1.IngressSpec{Host: "acme.example.com"}
	us.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptr(int32(2)), MaxReplicas: 4}
	us.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{}
	us.Spec.NetworkPolicy.Enabled = true
	scheme := NewScheme()
	var got []string
	for _, obj := range []client.Object{
		nilIfNil(render.Ingress(us)),
		nilIfNil(render.HorizontalPodAutoscaler(us)),
		nilIfNil(render.PodDisruptionBudget(us)),
		nilIfNil(render.NetworkPolicy(us)),
		render.TenantEndpointSlice(us, discoveryv1.AddressTypeIPv4, nil),
	} {
		if obj == nil {
			continue
		}
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, gvk.String())
	}
	var want []string
	for _, k := range v1alpha1.OwnedKinds() {
		if k.Optional {
			want = append(want, k.GroupVersionKind.String())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("rendered %v, want the contract's optional kinds %v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }
