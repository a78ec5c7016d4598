package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
)

func npPort(proto corev1.Protocol, port int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(port)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func nsNamed(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": name}}
}

var (
	tcp = corev1.ProtocolTCP
	udp = corev1.ProtocolUDP
	// defaultDNSRule is the egress rule to the cluster DNS.
	defaultDNSRule = networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: nsNamed("kube-system"),
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{npPort(udp, 53), npPort(tcp, 53)},
	}
)

func assertPolicySpec(t *testing.T, got *networkingv1.NetworkPolicy, want networkingv1.NetworkPolicySpec) {
	t.Helper()
	if got == nil {
		t.Fatal("no NetworkPolicy")
	}
	if !equality.Semantic.DeepEqual(got.Spec, want) {
		g, _ := yaml.Marshal(got.Spec)
		w, _ := yaml.Marshal(want)
		t.Errorf("NetworkPolicy spec\n got:\n%s\nwant:\n%s", g, w)
	}
}

func TestNetworkPolicyIsOffByDefault(t *testing.T) {
	if NetworkPolicy(tenant()) != nil {
		t.Fatal("network policy while disabled")
	}
}

// Enabled with nothing else: the API port from the tenant's namespace and
// the ingress controller's, no metrics scraping, egress only to the cluster
// DNS and MongoDB's port; both directions are policed.
func TestNetworkPolicyDefaults(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) { u.Spec.NetworkPolicy.Enabled = true })
	np := NetworkPolicy(us)
	assertOwned(t, us, np, "acme")
	if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(Labels(us))) {
		t.Error("policy does not select the tenant's pods")
	}
	assertPolicySpec(t, np, networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(us)},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{}}, // every pod of the tenant's namespace
				{NamespaceSelector: nsNamed("ingress-nginx")},
			},
			Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 8080)},
		}},
		Egress: []networkingv1.NetworkPolicyEgressRule{
			defaultDNSRule,
			{Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 27017)}},
		},
	})
	// The metrics port is admitted by no rule.
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port.IntValue() == MetricsPort {
				t.Errorf("the metrics port is open by default: %+v", r)
			}
		}
	}
}

// Every list replaces its default; delivery targets follow the webhook URL's
// and the SMTP server's ports.
func TestNetworkPolicyFromSpec(t *testing.T) {
	monitoring := v1alpha1.NetworkPeer{NamespaceSelector: nsNamed("monitoring"),
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}}}
	gateway := v1alpha1.NetworkPeer{NamespaceSelector: nsNamed("gateway")}
	lb := v1alpha1.NetworkPeer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.9.0.0/16"}}}
	mongo := v1alpha1.NetworkPeer{NamespaceSelector: nsNamed("databases"), PodSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"mongo", "mongos"}}}}}
	relay := v1alpha1.NetworkPeer{IPBlock: &v1alpha1.IPBlock{CIDR: "203.0.113.7/32"}}
	nodeDNS := v1alpha1.NetworkPeer{IPBlock: &v1alpha1.IPBlock{CIDR: "169.254.20.10/32"}}
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.NetworkPolicy = v1alpha1.NetworkPolicySpec{
			Enabled:     true,
			IngressFrom: []v1alpha1.NetworkPeer{gateway, lb},
			MetricsFrom: []v1alpha1.NetworkPeer{monitoring},
			DNSTo:       []v1alpha1.NetworkPeer{nodeDNS},
			MongoTo:     []v1alpha1.NetworkPeer{mongo},
			MongoPorts:  []int32{27017, 27018},
			DeliveryTo:  []v1alpha1.NetworkPeer{relay},
			AdditionalEgress: []v1alpha1.NetworkEgressRule{{
				To:    []v1alpha1.NetworkPeer{{IPBlock: &v1alpha1.IPBlock{CIDR: "2001:db8::/32"}}},
				Ports: []v1alpha1.NetworkPort{{Port: 443}, {Port: 4317, Protocol: corev1.ProtocolUDP}},
			}},
		}
		u.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: "https://sms.example.com:8443/codes"}}
		u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: "smtp.example.com", Port: 25, From: "a@b"}}
	})
	toPeer := func(p v1alpha1.NetworkPeer) networkingv1.NetworkPolicyPeer {
		out := networkingv1.NetworkPolicyPeer{PodSelector: p.PodSelector, NamespaceSelector: p.NamespaceSelector}
		if p.IPBlock != nil {
			out.IPBlock = &networkingv1.IPBlock{CIDR: p.IPBlock.CIDR, Except: p.IPBlock.Except}
		}
		return out
	}
	assertPolicySpec(t, NetworkPolicy(us), networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(us)},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{toPeer(gateway), toPeer(lb)}, Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 8080)}},
			{From: []networkingv1.NetworkPolicyPeer{toPeer(monitoring)}, Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 9090)}},
		},
		Egress: []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{toPeer(nodeDNS)}, Ports: []networkingv1.NetworkPolicyPort{npPort(udp, 53), npPort(tcp, 53)}},
			{To: []networkingv1.NetworkPolicyPeer{toPeer(mongo)}, Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 27017), npPort(tcp, 27018)}},
			{To: []networkingv1.NetworkPolicyPeer{toPeer(relay)}, Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 25), npPort(tcp, 8443)}},
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/32"}}},
				Ports: []networkingv1.NetworkPolicyPort{npPort(tcp, 443), npPort(udp, 4317)}},
		},
	})
}

// ingressControllerNamespace "" leaves only the tenant's own namespace; a
// name replaces ingress-nginx.
func TestNetworkPolicyIngressControllerNamespace(t *testing.T) {
	for ns, want := range map[string][]networkingv1.NetworkPolicyPeer{
		"":        {{PodSelector: &metav1.LabelSelector{}}},
		"traefik": {{PodSelector: &metav1.LabelSelector{}}, {NamespaceSelector: nsNamed("traefik")}},
	} {
		us := tenant(func(u *v1alpha1.UserService) {
			u.Spec.NetworkPolicy.Enabled = true
			u.Spec.NetworkPolicy.IngressControllerNamespace = &ns
		})
		if got := NetworkPolicy(us).Spec.Ingress[0].From; !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("ingressControllerNamespace %q: from %+v, want %+v", ns, got, want)
		}
	}
}

// The rendered object does not share memory with the spec: a later change
// of the spec (the reconciler's copy) cannot alter an applied object.
func TestNetworkPolicyCopiesTheSpec(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.NetworkPolicy = v1alpha1.NetworkPolicySpec{Enabled: true,
			IngressFrom: []v1alpha1.NetworkPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}, IPBlock: nil}},
			MongoTo:     []v1alpha1.NetworkPeer{{IPBlock: &v1alpha1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}}}
	})
	np := NetworkPolicy(us)
	us.Spec.NetworkPolicy.IngressFrom[0].PodSelector.MatchLabels["a"] = "changed"
	us.Spec.NetworkPolicy.MongoTo[0].IPBlock.Except[0] = "10.2.0.0/16"
	if np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["a"] != "b" || np.Spec.Egress[1].To[0].IPBlock.Except[0] != "10.1.0.0/16" {
		t.Errorf("the rendered policy follows later spec changes: %+v", np.Spec)
	}
}

func TestDeliveryPorts(t *testing.T) {
	webhook := func(url string) func(*v1alpha1.UserService) {
		return func(u *v1alpha1.UserService) {
			u.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: url}}
		}
	}
	smtp := func(port int32) func(*v1alpha1.UserService) {
		return func(u *v1alpha1.UserService) {
			u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: "h", Port: port, From: "a@b"}}
		}
	}
	wechat := func(base string) func(*v1alpha1.UserService) {
		return func(u *v1alpha1.UserService) { u.Spec.WeChat = &v1alpha1.WeChatSpec{AppID: "wx1", APIBaseURL: base} }
	}
	for name, tc := range map[string]struct {
		mutate []func(*v1alpha1.UserService)
		want   []int32
	}{
		"codes logged":        {nil, nil},
		"wechat default api":  {[]func(*v1alpha1.UserService){wechat("")}, []int32{443}},
		"wechat fake api":     {[]func(*v1alpha1.UserService){wechat("http://127.0.0.1:18790"), smtp(25)}, []int32{25, 18790}},
		"https webhook":       {[]func(*v1alpha1.UserService){webhook("https://sms.example.com/x")}, []int32{443}},
		"http webhook":        {[]func(*v1alpha1.UserService){webhook("http://sms.local/x")}, []int32{80}},
		"explicit port":       {[]func(*v1alpha1.UserService){webhook("https://[2001:db8::1]:8443/x")}, []int32{8443}},
		"smtp default port":   {[]func(*v1alpha1.UserService){smtp(0)}, []int32{587}},
		"both, one port":      {[]func(*v1alpha1.UserService){webhook("https://a:587/"), smtp(587)}, []int32{587}},
		"both, sorted":        {[]func(*v1alpha1.UserService){webhook("https://a/"), smtp(25)}, []int32{25, 443}},
		"unparsable url port": {[]func(*v1alpha1.UserService){webhook("https://a:99999/")}, nil},
	} {
		if got := DeliveryPorts(tenant(tc.mutate...)); !equality.Semantic.DeepEqual(got, tc.want) {
			t.Errorf("%s: ports %v, want %v", name, got, tc.want)
		}
	}
}

// urlPort never panics and gives 0 or a valid TCP port; an explicit port
// it gives is the one in the URL.
func FuzzURLPort(f *testing.F) {
	for _, s := range []string{"https://a/", "http://a:8080/x", "https://[::1]:443", "https://a:0/", "https://a:99999/", "ftp://a/", "https://a:-1/", "%zz", "http://[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p := urlPort(raw)
		if p < 0 || p > 65535 {
			t.Fatalf("urlPort(%q) = %d", raw, p)
		}
	})
}
