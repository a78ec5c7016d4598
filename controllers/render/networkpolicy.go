package render

import (
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"userve.dev/userve/api/v1alpha1"
)

// Defaults of spec.networkPolicy (documented on the API fields and in
// docs/install.md).
const (
	// LabelNamespaceName is the label the API server sets on every
	// namespace to its name.
	LabelNamespaceName = "kubernetes.io/metadata.name"
	// DefaultDNSNamespace and DefaultDNSPodLabel locate the cluster DNS
	// (kube-dns or CoreDNS, which keeps the k8s-app=kube-dns label).
	DefaultDNSNamespace = "kube-system"
	DefaultDNSPodLabel  = "kube-dns"
	DNSPort             = 53
	DefaultMongoPort    = 27017
	// DefaultIngressControllerNamespace is admitted to the API port while
	// ingressFrom is unset and ingressControllerNamespace is too.
	DefaultIngressControllerNamespace = "ingress-nginx"
)

// NetworkPolicy confines the tenant pods; nil unless
// spec.networkPolicy.enabled. Both directions are listed in policyTypes,
// so whatever no rule admits is refused:
//   - ingress to the API port from spec.networkPolicy.ingressFrom, by
//     default the tenant's own namespace and the ingress controller's;
//   - ingress to the metrics port from metricsFrom only (nobody by default);
//   - egress to DNS (port 53, UDP and TCP), to MongoDB (mongoPorts), to the
//     code delivery targets (the webhook URL's port, smtp.port) when codes
//     are delivered, and to additionalEgress.
func NetworkPolicy(us *v1alpha1.UserService) *networkingv1.NetworkPolicy {
	np := us.Spec.NetworkPolicy
	if !np.Enabled {
		return nil
	}
	ingress := []networkingv1.NetworkPolicyIngressRule{{
		From:  apiIngressPeers(np),
		Ports: tcpPorts(Port),
	}}
	if len(np.MetricsFrom) > 0 {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			From:  peers(np.MetricsFrom),
			Ports: tcpPorts(MetricsPort),
		})
	}

	dns := peers(np.DNSTo)
	if len(np.DNSTo) == 0 {
		dns = []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: namespaceNamed(DefaultDNSNamespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": DefaultDNSPodLabel}},
		}}
	}
	dnsPort := intstr.FromInt32(DNSPort)
	mongoPorts := np.MongoPorts
	if len(mongoPorts) == 0 {
		mongoPorts = []int32{DefaultMongoPort}
	}
	egress := []networkingv1.NetworkPolicyEgressRule{
		{To: dns, Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptrTo(corev1.ProtocolUDP), Port: &dnsPort},
			{Protocol: ptrTo(corev1.ProtocolTCP), Port: &dnsPort},
		}},
		{To: peers(np.MongoTo), Ports: tcpPorts(mongoPorts...)},
	}
	if ports := DeliveryPorts(us); len(ports) > 0 {
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: peers(np.DeliveryTo), Ports: tcpPorts(ports...)})
	}
	for _, r := range np.AdditionalEgress {
		rule := networkingv1.NetworkPolicyEgressRule{To: peers(r.To)}
		for _, p := range r.Ports {
			port, proto := intstr.FromInt32(p.Port), p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port})
		}
		egress = append(egress, rule)
	}

	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(us, us.Name),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(us)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     ingress,
			Egress:      egress,
		},
	}
}

// apiIngressPeers is ingressFrom, or by default every pod of the tenant's
// namespace and of the ingress controller's namespace.
func apiIngressPeers(np v1alpha1.NetworkPolicySpec) []networkingv1.NetworkPolicyPeer {
	if len(np.IngressFrom) > 0 {
		return peers(np.IngressFrom)
	}
	out := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}
	controller := DefaultIngressControllerNamespace
	if np.IngressControllerNamespace != nil {
		controller = *np.IngressControllerNamespace
	}
	if controller != "" {
		out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaceNamed(controller)})
	}
	return out
}

// DeliveryPorts are the TCP ports code delivery and WeChat login connect
// to: the SMS webhook URL's and WeChat's API base URL's (explicit, else 443
// or 80 by scheme) and the SMTP server's.
// None when codes are only logged.
func DeliveryPorts(us *v1alpha1.UserService) []int32 {
	var ports []int32
	v := us.Spec.Verification
	if v.SMS != nil && v.SMS.Webhook != nil {
		if p := urlPort(v.SMS.Webhook.URL); p > 0 {
			ports = append(ports, p)
		}
	}
	if wc := us.Spec.WeChat; wc != nil {
		base := wc.APIBaseURL
		if base == "" {
			base = v1alpha1.DefaultWeChatAPIBaseURL
		}
		if p := urlPort(base); p > 0 {
			ports = append(ports, p)
		}
	}
	if v.Mail != nil && v.Mail.SMTP != nil {
		p := v.Mail.SMTP.Port
		if p == 0 {
			p = v1alpha1.DefaultSMTPPort
		}
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// urlPort is the TCP port of an http(s) URL; 0 when it has none to give.
func urlPort(raw string) int32 {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return 0
		}
		return int32(n)
	}
	switch u.Scheme {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}

func peers(in []v1alpha1.NetworkPeer) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for _, p := range in {
		peer := networkingv1.NetworkPolicyPeer{
			PodSelector:       p.PodSelector.DeepCopy(),
			NamespaceSelector: p.NamespaceSelector.DeepCopy(),
		}
		if p.IPBlock != nil {
			peer.IPBlock = &networkingv1.IPBlock{CIDR: p.IPBlock.CIDR, Except: slices.Clone(p.IPBlock.Except)}
		}
		out = append(out, peer)
	}
	return out
}

func tcpPorts(ports ...int32) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ports {
		port := intstr.FromInt32(p)
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptrTo(corev1.ProtocolTCP), Port: &port})
	}
	return out
}

func namespaceNamed(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelNamespaceName: name}}
}
