package render

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"userve.dev/userve/api/v1alpha1"
)

func pool(mutate ...func(*v1alpha1.UserServicePool)) *v1alpha1.UserServicePool {
	p := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: "shared", UID: types.UID("pool-uid")}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func assertPoolOwned(t *testing.T, m metav1.Object) {
	t.Helper()
	if m.GetName() != "userve-pool-shared" || m.GetNamespace() != "pools" {
		t.Errorf("object is %s/%s", m.GetNamespace(), m.GetName())
	}
	if m.GetLabels()[LabelManagedBy] != ManagedBy || m.GetLabels()[LabelName] != PoolAppName || m.GetLabels()[v1alpha1.PoolLabel] != "" {
		// PoolLabel marks tenant Secrets only: the pool's own objects
		// must never look like one.
		t.Errorf("labels = %v", m.GetLabels())
	}
	refs := m.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != "pool-uid" || refs[0].Kind != "UserServicePool" || !*refs[0].Controller {
		t.Errorf("owner references = %+v, want the pool as controller", refs)
	}
}

func TestPoolArgsPassOnlyWhatTheSpecSets(t *testing.T) {
	if got, want := PoolArgs(pool()), []string{"pool", "--pool", "shared", "--listen", ":8080", "--metrics-listen", ":9090"}; !slices.Equal(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	p := pool(func(p *v1alpha1.UserServicePool) {
		p.Spec.IdleTimeout = &metav1.Duration{Duration: 90 * time.Second}
		p.Spec.TenantMaxInflight = ptrTo(int32(16))
		p.Spec.MaxExecuting = ptrTo(int32(6))
		p.Spec.Egress.AllowCIDRs = []string{"10.0.3.7/32", "fd00::/64"}
	})
	want := []string{"pool", "--pool", "shared", "--listen", ":8080", "--metrics-listen", ":9090",
		"--idle-timeout", "1m30s", "--tenant-max-inflight", "16", "--max-executing", "6", "--allow-egress", "10.0.3.7/32", "--allow-egress", "fd00::/64"}
	if got := PoolArgs(p); !slices.Equal(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
}

func TestPoolDeploymentIsHardenedAndKnowsItsPod(t *testing.T) {
	d := PoolDeployment(pool(), "pools", "example.com/userve:1")
	assertPoolOwned(t, d)
	pod := d.Spec.Template
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(pod.Labels)) {
		t.Fatalf("selector %v does not match the pod labels %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	if *d.Spec.Replicas != DefaultPoolReplicas || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntVal != 0 {
		t.Errorf("replicas %d, strategy %+v", *d.Spec.Replicas, d.Spec.Strategy)
	}
	s := pod.Spec
	if s.ServiceAccountName != "userve-pool-shared" || s.AutomountServiceAccountToken == nil || !*s.AutomountServiceAccountToken {
		t.Errorf("the pool pods need their account's token: %q %v", s.ServiceAccountName, s.AutomountServiceAccountToken)
	}
	if !*s.SecurityContext.RunAsNonRoot {
		t.Error("pool pods may run as root")
	}
	c := s.Containers[0]
	if c.Image != "example.com/userve:1" || !*c.SecurityContext.ReadOnlyRootFilesystem || *c.SecurityContext.AllowPrivilegeEscalation ||
		c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("container not hardened as a tenant's: %+v", c)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = e.ValueFrom.ResourceFieldRef.Resource
		}
	}
	if env["POD_NAMESPACE"] != "metadata.namespace" || env["POD_NAME"] != "metadata.name" || env[v1alpha1.EnvMemoryLimit] != "limits.memory" {
		t.Errorf("env = %v", env)
	}
	if _, ok := env[v1alpha1.EnvGOMAXPROCS]; ok {
		t.Error("GOMAXPROCS without a CPU limit")
	}
	r := c.Resources
	if r.Requests.Cpu().String() != DefaultPoolCPURequest || r.Requests.Memory().String() != DefaultPoolMemoryRequest || r.Limits.Memory().String() != DefaultPoolMemoryLimit {
		t.Errorf("default resources = %+v", r)
	}

	limited := PoolDeployment(pool(func(p *v1alpha1.UserServicePool) {
		p.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
		p.Spec.PodTemplate.NodeSelector = map[string]string{"pool": "users"}
	}), "pools", "x")
	if !slices.ContainsFunc(limited.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == v1alpha1.EnvGOMAXPROCS }) ||
		limited.Spec.Template.Spec.NodeSelector["pool"] != "users" {
		t.Error("a CPU limit or the pod template does not reach the pod")
	}
}

func TestPoolRoleReadsSecretsAndPatchesPodsOfItsNamespaceOnly(t *testing.T) {
	r := PoolRole(pool(), "pools")
	assertPoolOwned(t, r)
	if len(r.Rules) != 2 ||
		!slices.Equal(r.Rules[0].Resources, []string{"secrets"}) || !slices.Equal(r.Rules[0].Verbs, []string{"get", "list", "watch"}) ||
		!slices.Equal(r.Rules[1].Resources, []string{"pods"}) || !slices.Equal(r.Rules[1].Verbs, []string{"get", "patch"}) {
		t.Errorf("rules = %+v", r.Rules)
	}
	b := PoolRoleBinding(pool(), "pools")
	assertPoolOwned(t, b)
	if b.RoleRef.Kind != "Role" || b.RoleRef.Name != r.Name || len(b.Subjects) != 1 || b.Subjects[0].Name != PoolServiceAccount(pool(), "pools").Name || b.Subjects[0].Namespace != "pools" {
		t.Errorf("binding = %+v", b)
	}
}

func TestPoolServiceAndOptionalObjects(t *testing.T) {
	s := PoolService(pool(), "pools")
	assertPoolOwned(t, s)
	if s.Spec.Ports[0].Port != Port || s.Spec.Ports[0].Name != PortName || s.Spec.Selector[LabelInstance] != "shared" {
		t.Errorf("service = %+v", s.Spec)
	}
	if PoolPodDisruptionBudget(pool(), "pools") == nil {
		t.Error("two replicas (the default) without a disruption budget")
	}
	one := pool(func(p *v1alpha1.UserServicePool) { p.Spec.Replicas = ptrTo(int32(1)) })
	if PoolPodDisruptionBudget(one, "pools") != nil {
		t.Error("a single replica with a budget would block node drains")
	}
	scaled := pool(func(p *v1alpha1.UserServicePool) {
		p.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptrTo(int32(3)), MaxReplicas: 6}
	})
	if d := PoolDeployment(scaled, "pools", "x"); d.Spec.Replicas != nil {
		t.Error("replicas set while the autoscaler decides")
	}
	h := PoolHorizontalPodAutoscaler(scaled, "pools")
	if h == nil || h.Spec.ScaleTargetRef.Name != "userve-pool-shared" || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 6 {
		t.Errorf("autoscaler = %+v", h)
	}
	if pdb := PoolPodDisruptionBudget(scaled, "pools"); pdb == nil || pdb.Spec.MaxUnavailable.IntVal != 1 {
		t.Errorf("autoscaled from 3: budget %+v", pdb)
	}
	if PoolHorizontalPodAutoscaler(pool(), "pools") != nil {
		t.Error("an autoscaler without spec.autoscaling")
	}
	if PoolNamespace(pool(), "userve-system") != "userve-system" || PoolNamespace(pool(func(p *v1alpha1.UserServicePool) { p.Spec.Namespace = "pools" }), "x") != "pools" {
		t.Error("PoolNamespace")
	}
}

func TestPoolTenantSecretHoldsTheWholeContract(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) { u.Spec.Ingress = &v1alpha1.IngressSpec{Host: "Users.Example.com"} })
	config, err := ServerConfig(us, "shop_acme")
	if err != nil {
		t.Fatal(err)
	}
	s, err := PoolTenantSecret(us, "shared", "pools", config, map[string][]byte{v1alpha1.EnvJWTKey: []byte("k"), v1alpha1.EnvMongoDatabase: []byte("shop_acme")})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "shared.shop.acme" || s.Namespace != "pools" || len(s.OwnerReferences) != 0 {
		t.Errorf("secret %s/%s owners %v", s.Namespace, s.Name, s.OwnerReferences)
	}
	for k, v := range map[string]string{v1alpha1.PoolLabel: "shared", v1alpha1.PoolTenantNamespaceLabel: "shop", v1alpha1.PoolTenantNameLabel: "acme", LabelWatched: "true", LabelManagedBy: ManagedBy} {
		if s.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, s.Labels[k], v)
		}
	}
	var manifest v1alpha1.UserService
	if err := json.Unmarshal(s.Data[v1alpha1.PoolTenantManifestKey], &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Name != "acme" || manifest.Namespace != "shop" || manifest.Spec.Mongo.Database != "shop_acme" || manifest.Spec.API.MinApp.MaxLimit != 1000 {
		t.Errorf("manifest = %s", s.Data[v1alpha1.PoolTenantManifestKey])
	}
	if string(s.Data[v1alpha1.EnvJWTKey]) != "k" || string(s.Data[v1alpha1.EnvMongoDatabase]) != "shop_acme" {
		t.Errorf("env values = %v", s.Data)
	}
	hosts := strings.Fields(string(s.Data[v1alpha1.PoolTenantHostsKey]))
	if want := []string{"acme", "acme.shop", "acme.shop.svc", "acme.shop.svc.cluster.local", "users.example.com"}; !slices.Equal(hosts, want) {
		t.Errorf("hosts = %q, want %q", hosts, want)
	}
}

func TestTenantEndpointsMirrorThePoolsReadyPods(t *testing.T) {
	yes, no := true, false
	ep := func(addr string, ready, terminating *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "p-" + addr}}
	}
	slices_ := []discoveryv1.EndpointSlice{
		{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{ep("10.0.0.3", &yes, nil), ep("10.0.0.9", &no, nil), ep("10.0.0.1", nil, nil)}},
		{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{ep("10.0.0.2", &yes, &yes), ep("10.0.0.3", &yes, nil)}},
		{AddressType: discoveryv1.AddressTypeIPv6, Endpoints: []discoveryv1.Endpoint{ep("fd00::1", &yes, nil)}},
	}
	got := ReadyEndpoints(slices_, discoveryv1.AddressTypeIPv4)
	var addrs []string
	for _, e := range got {
		addrs = append(addrs, e.Addresses[0])
		if !*e.Conditions.Ready || e.TargetRef == nil {
			t.Errorf("endpoint %+v", e)
		}
	}
	if !slices.Equal(addrs, []string{"10.0.0.1", "10.0.0.3"}) {
		t.Errorf("ready endpoints %v: want the ready, not terminating, IPv4 ones, sorted, once each", addrs)
	}

	us := tenant()
	s := TenantEndpointSlice(us, discoveryv1.AddressTypeIPv4, got)
	assertOwned(t, us, s, "acme")
	if s.Labels[discoveryv1.LabelServiceName] != "acme" || s.Labels[discoveryv1.LabelManagedBy] != EndpointSliceManager {
		t.Errorf("labels = %v", s.Labels)
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != PortName || *s.Ports[0].Port != Port {
		t.Errorf("ports = %+v: must match the Service's port name and the pool's --listen", s.Ports)
	}
	if e := TenantEndpointSlice(us, discoveryv1.AddressTypeIPv4, nil); e.Endpoints == nil {
		t.Error("no endpoints must render as an empty list (the API server requires the field)")
	}

	svc := PooledService(us)
	if svc.Spec.Selector != nil || svc.Spec.Ports[0].Port != Port || svc.Name != "acme" {
		t.Errorf("pooled Service %+v", svc.Spec)
	}
}
