package install

import (
	"context"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// egressPorts lists a rule's ports as "PROTO/port".
func egressPorts(r networkingv1.NetworkPolicyEgressRule) []string {
	var out []string
	for _, p := range r.Ports {
		out = append(out, string(*p.Protocol)+"/"+p.Port.String())
	}
	return out
}

// operatorPolicy is the NetworkPolicy rendered for the operator, checked to
// select the operator's pods and to restrict their egress only.
func operatorPolicy(t *testing.T, manifests []byte) *networkingv1.NetworkPolicy {
	t.Helper()
	objs := decode(t, manifests)
	nps := ofKind(objs, "NetworkPolicy")
	if len(nps) != 1 {
		t.Fatalf("%d NetworkPolicies rendered, want 1: %v", len(nps), names(objs))
	}
	np := typed[networkingv1.NetworkPolicy](t, nps[0])
	d := deployment(t, objs)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Fatalf("the policy's selector %v does not select the operator's pods %v (%v)", np.Spec.PodSelector, d.Spec.Template.Labels, err)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) {
		t.Errorf("policy types %v: want Egress only (metrics and probes come in)", np.Spec.PolicyTypes)
	}
	return np
}

// By default the operator may reach the API server, DNS and MongoDB ports,
// nothing else; the policy is applied by a real API server.
func TestChartOperatorEgressPolicy(t *testing.T) {
	np := operatorPolicy(t, render(t, "userve", "userve-system"))
	var got [][]string
	for _, r := range np.Spec.Egress {
		got = append(got, egressPorts(r))
		if len(r.To) != 0 {
			t.Errorf("default rule %v names peers %v: the defaults restrict by port", egressPorts(r), r.To)
		}
	}
	want := [][]string{{"TCP/443", "TCP/6443"}, {"UDP/53", "TCP/53"}, {"TCP/27017"}}
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Errorf("egress ports %v, want %v", got, want)
	}

	objs := decode(t, render(t, "userve", "userve-system", "--set", "networkPolicy.enabled=false"))
	if n := len(ofKind(objs, "NetworkPolicy")); n != 0 {
		t.Errorf("networkPolicy.enabled=false renders %d NetworkPolicies", n)
	}

	// Custom peers and ports, and extra rules.
	np = operatorPolicy(t, render(t, "platform", "platform-system", "-f", repoPath(t, "test", "install", "testdata", "custom-values.yaml")))
	if len(np.Spec.Egress) != 4 {
		t.Fatalf("%d egress rules, want 4: %+v", len(np.Spec.Egress), np.Spec.Egress)
	}
	api, dns, mongo, extra := np.Spec.Egress[0], np.Spec.Egress[1], np.Spec.Egress[2], np.Spec.Egress[3]
	if len(api.To) != 1 || api.To[0].IPBlock == nil || api.To[0].IPBlock.CIDR != "10.0.0.10/32" || !slices.Equal(egressPorts(api), []string{"TCP/6443"}) {
		t.Errorf("API server rule %+v", api)
	}
	if len(dns.To) != 1 || dns.To[0].PodSelector == nil || dns.To[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" {
		t.Errorf("DNS rule %+v", dns)
	}
	if len(mongo.To) != 1 || mongo.To[0].NamespaceSelector == nil || !slices.Equal(egressPorts(mongo), []string{"TCP/27017", "TCP/27018"}) {
		t.Errorf("MongoDB rule %+v", mongo)
	}
	if len(extra.Ports) != 1 || *extra.Ports[0].Port != intstr.FromInt32(30017) {
		t.Errorf("extra rule %+v", extra)
	}
}

// The default policy is accepted and stored by a real API server.
func TestChartOperatorEgressPolicyApplies(t *testing.T) {
	createNamespace(t, "chart-netpol")
	manifests := render(t, "ut-netpol", "chart-netpol")
	applyServerSide(t, manifests)
	var np networkingv1.NetworkPolicy
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: "chart-netpol", Name: "ut-netpol-userve"}, &np); err != nil {
		t.Fatalf("the operator's NetworkPolicy is not stored: %v", err)
	}
	if len(np.Spec.Egress) != 3 {
		t.Errorf("stored policy has %d egress rules", len(np.Spec.Egress))
	}
}
