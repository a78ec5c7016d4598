package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// The API server refuses a spec.networkPolicy the NetworkPolicy API would
// refuse later (or that means nothing), naming the rule.
func TestInvalidNetworkPoliciesAreRejected(t *testing.T) {
	ns := namespace(t)
	cidr := func(c string, except ...string) []v1alpha1.NetworkPeer {
		return []v1alpha1.NetworkPeer{{IPBlock: &v1alpha1.IPBlock{CIDR: c, Except: except}}}
	}
	badNS := "Ingress_NGINX"
	cases := []struct {
		name string
		np   v1alpha1.NetworkPolicySpec
		want string
	}{
		{"cidr not a CIDR", v1alpha1.NetworkPolicySpec{IngressFrom: cidr("10.0.0.0")}, "ipBlock.cidr must be a CIDR"},
		{"cidr a host name", v1alpha1.NetworkPolicySpec{MongoTo: cidr("mongo.databases.svc")}, "ipBlock.cidr must be a CIDR"},
		{"cidr prefix too long", v1alpha1.NetworkPolicySpec{DeliveryTo: cidr("10.0.0.0/33")}, "ipBlock.cidr must be a CIDR"},
		{"except not a CIDR", v1alpha1.NetworkPolicySpec{MetricsFrom: cidr("10.0.0.0/8", "10.1.0.0")}, "ipBlock.except must be CIDRs"},
		{"except outside the cidr", v1alpha1.NetworkPolicySpec{DNSTo: cidr("10.0.0.0/8", "192.168.0.0/16")}, "ipBlock.except must hold CIDRs strictly inside ipBlock.cidr"},
		{"except equal to the cidr", v1alpha1.NetworkPolicySpec{IngressFrom: cidr("10.0.0.0/8", "10.0.0.0/8")}, "ipBlock.except must hold CIDRs strictly inside ipBlock.cidr"},
		{"empty peer", v1alpha1.NetworkPolicySpec{IngressFrom: []v1alpha1.NetworkPeer{{}}}, "a network peer needs podSelector, namespaceSelector or ipBlock"},
		{"ipBlock with a selector", v1alpha1.NetworkPolicySpec{MetricsFrom: []v1alpha1.NetworkPeer{{
			IPBlock: &v1alpha1.IPBlock{CIDR: "10.0.0.0/8"}, NamespaceSelector: &metav1.LabelSelector{}}}}, "cannot be combined with podSelector or namespaceSelector"},
		{"mongo port 0", v1alpha1.NetworkPolicySpec{MongoPorts: []int32{0}}, "spec.networkPolicy.mongoPorts[0]"},
		{"mongo port too high", v1alpha1.NetworkPolicySpec{MongoPorts: []int32{70000}}, "spec.networkPolicy.mongoPorts[0]"},
		{"ingress controller namespace", v1alpha1.NetworkPolicySpec{IngressControllerNamespace: &badNS}, "spec.networkPolicy.ingressControllerNamespace"},
		{"egress rule without ports", v1alpha1.NetworkPolicySpec{AdditionalEgress: []v1alpha1.NetworkEgressRule{{To: cidr("10.0.0.0/8")}}}, "spec.networkPolicy.additionalEgress[0].ports"},
		{"egress protocol", v1alpha1.NetworkPolicySpec{AdditionalEgress: []v1alpha1.NetworkEgressRule{{Ports: []v1alpha1.NetworkPort{{Port: 1, Protocol: "ICMP"}}}}}, `Unsupported value: "ICMP"`},
		{"egress port", v1alpha1.NetworkPolicySpec{AdditionalEgress: []v1alpha1.NetworkEgressRule{{Ports: []v1alpha1.NetworkPort{{Port: 65536}}}}}, "spec.networkPolicy.additionalEgress[0].ports[0].port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "invalid", Namespace: ns}}
			us.Spec.NetworkPolicy = c.np
			us.Spec.NetworkPolicy.Enabled = true
			err := k8s.Create(context.Background(), us)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want Invalid mentioning %q", err, c.want)
			}
		})
	}
}

// A full spec.networkPolicy is accepted and applied exactly as rendered; a
// change of it reaches the NetworkPolicy.
func TestNetworkPolicyIsAppliedAsRendered(t *testing.T) {
	const spec = `
enabled: true
ingressFrom:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: gateway}}
    podSelector: {matchLabels: {app: envoy}}
  - ipBlock: {cidr: 10.0.0.0/8, except: [10.9.0.0/16]}
  - ipBlock: {cidr: "fd00::/8", except: ["fd00:1::/32"]}
metricsFrom:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
dnsTo:
  - ipBlock: {cidr: 169.254.20.10/32}
mongoTo:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: databases}}
    podSelector: {matchExpressions: [{key: app, operator: In, values: [mongo]}]}
mongoPorts: [27017, 27018]
deliveryTo:
  - ipBlock: {cidr: 203.0.113.0/24}
additionalEgress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    ports: [{port: 443}, {port: 4317, protocol: UDP}]
`
	us := newTenant(t, func(u *v1alpha1.UserService) {
		if err := yaml.UnmarshalStrict([]byte(spec), &u.Spec.NetworkPolicy); err != nil {
			t.Fatal(err)
		}
		u.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{
			URL: "https://sms.example.com:8443/codes", SecretRef: &v1alpha1.SecretKeyRef{Name: "sms", Key: "hmac"}}}
	})
	secret(t, us.Namespace, "sms", map[string]string{"hmac": "k"})
	waitPolicy := func(what string) {
		t.Helper()
		eventually(t, what, func() error {
			var got networkingv1.NetworkPolicy
			if err := get(t, &got, us.Namespace, us.Name); err != nil {
				return err
			}
			want := render.NetworkPolicy(tenant(t, us))
			if !equality.Semantic.DeepEqual(got.Spec, want.Spec) {
				g, _ := yaml.Marshal(got.Spec)
				w, _ := yaml.Marshal(want.Spec)
				return fmt.Errorf("applied:\n%s\nrendered:\n%s", g, w)
			}
			return nil
		})
	}
	waitPolicy("the NetworkPolicy as rendered")
	var got networkingv1.NetworkPolicy
	if err := get(t, &got, us.Namespace, us.Name); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.PolicyTypes) != 2 || len(got.Spec.Egress) != 4 || got.Spec.Egress[2].Ports[0].Port.IntValue() != 8443 {
		t.Errorf("policy types %v, egress %+v: want both directions, and the webhook's port 8443", got.Spec.PolicyTypes, got.Spec.Egress)
	}

	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.NetworkPolicy.MetricsFrom = nil
		u.Spec.NetworkPolicy.MongoPorts = nil
	})
	waitPolicy("the NetworkPolicy after the update")
	if err := get(t, &got, us.Namespace, us.Name); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Ingress) != 1 || got.Spec.Egress[1].Ports[0].Port.IntValue() != 27017 || len(got.Spec.Egress[1].Ports) != 1 {
		t.Errorf("after removing metricsFrom and mongoPorts: ingress %+v egress %+v", got.Spec.Ingress, got.Spec.Egress)
	}
}
