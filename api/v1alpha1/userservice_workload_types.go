package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// How the operator runs a tenant: its Ingress, autoscaling, pod placement,
// network policy and disruption budget.

// IngressSpec exposes the tenant.
type IngressSpec struct {
	// Host name routed to the tenant, for example users.example.com.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host"`
	// ClassName of the ingress controller.
	// +optional
	ClassName *string `json:"className,omitempty"`
	// TLSSecretName turns on TLS with this certificate Secret (in the
	// UserService's namespace); the endpoint becomes https://HOST.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must not exceed maxReplicas"
type AutoscalingSpec struct {
	// MinReplicas is the autoscaler's floor.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas is the autoscaler's ceiling.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage is the average CPU use to aim for.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=80
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// PodTemplateSpec holds the scheduling settings of tenant pods.
type PodTemplateSpec struct {
	// NodeSelector of the tenant pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the tenant pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of the tenant pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints of the tenant pods. Their labelSelector may
	// match the pods' labels app.kubernetes.io/name=userve-server and
	// app.kubernetes.io/instance=NAME.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// PriorityClassName of the tenant pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// NetworkPolicySpec configures the tenant's NetworkPolicy. Each peer list
// replaces its default when set. Peers follow NetworkPolicy semantics: a
// podSelector alone selects pods of the tenant's namespace, a
// namespaceSelector alone every pod of the selected namespaces, both
// together the selected pods of the selected namespaces, an ipBlock
// addresses outside the cluster (or node addresses). Kubelet probes come
// from the node and are admitted by every common CNI without a rule.
type NetworkPolicySpec struct {
	// Enabled adds the NetworkPolicy. Without it the tenant pods accept and
	// open any connection the cluster allows.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// IngressFrom are the peers that may reach the API port (8080). Unset:
	// every pod of the tenant's own namespace, and every pod of the
	// namespace named by ingressControllerNamespace.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	IngressFrom []NetworkPeer `json:"ingressFrom,omitempty"`

	// IngressControllerNamespace is the namespace of the ingress controller
	// (matched by its kubernetes.io/metadata.name label), admitted to the API
	// port while ingressFrom is unset. Unset: ingress-nginx. Empty (""):
	// none, only the tenant's namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// +optional
	IngressControllerNamespace *string `json:"ingressControllerNamespace,omitempty"`

	// MetricsFrom are the peers that may scrape the metrics port (9090),
	// for example the monitoring namespace:
	// [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}].
	// Unset: nobody (the Service and the Ingress never route that port).
	// +kubebuilder:validation:MaxItems=32
	// +optional
	MetricsFrom []NetworkPeer `json:"metricsFrom,omitempty"`

	// DNSTo are the DNS servers the pods may query on port 53 (UDP and TCP).
	// Unset: the kube-dns pods (k8s-app=kube-dns) of kube-system, which
	// CoreDNS keeps by default. Clusters with NodeLocal DNSCache add its
	// address as an ipBlock (for example 169.254.20.10/32).
	// +kubebuilder:validation:MaxItems=32
	// +optional
	DNSTo []NetworkPeer `json:"dnsTo,omitempty"`

	// MongoTo are the MongoDB servers, on mongoPorts. Unset: any address on
	// mongoPorts (the URI names a host, not an address the policy could
	// match); name the MongoDB pods or CIDRs to narrow it.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	MongoTo []NetworkPeer `json:"mongoTo,omitempty"`

	// MongoPorts are the TCP ports of MongoDB. Unset: 27017.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +optional
	MongoPorts []int32 `json:"mongoPorts,omitempty"`

	// DeliveryTo are the code delivery targets: the SMS webhook and the SMTP
	// server of spec.verification, on the ports their URL and smtp.port
	// name. Unset: any address on those ports. No rule at all when codes
	// are only logged.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	DeliveryTo []NetworkPeer `json:"deliveryTo,omitempty"`

	// AdditionalEgress admits further destinations, for example an API the
	// tenant server calls that this version does not know of.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	AdditionalEgress []NetworkEgressRule `json:"additionalEgress,omitempty"`
}

// NetworkPeer is one side of a connection, as in a NetworkPolicy: pods by
// labels (podSelector, namespaceSelector) or addresses (ipBlock), not both.
// +kubebuilder:validation:XValidation:rule="has(self.podSelector) || has(self.namespaceSelector) || has(self.ipBlock)",message="a network peer needs podSelector, namespaceSelector or ipBlock"
// +kubebuilder:validation:XValidation:rule="!has(self.ipBlock) || (!has(self.podSelector) && !has(self.namespaceSelector))",message="a network peer's ipBlock cannot be combined with podSelector or namespaceSelector: use two peers"
type NetworkPeer struct {
	// PodSelector selects pods: of the tenant's namespace alone, or of the
	// namespaces namespaceSelector selects. {} selects every pod.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// NamespaceSelector selects namespaces by their labels (every namespace
	// has kubernetes.io/metadata.name=<its name>). {} selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// IPBlock selects addresses.
	// +optional
	IPBlock *IPBlock `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR, minus the CIDRs in except.
// +kubebuilder:validation:XValidation:rule="!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || (cidr(self.cidr).containsCIDR(e) && cidr(e).prefixLength() > cidr(self.cidr).prefixLength()))",message="ipBlock.except must hold CIDRs strictly inside ipBlock.cidr"
type IPBlock struct {
	// CIDR such as 10.0.0.0/8 or fd00::/8.
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="ipBlock.cidr must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	CIDR string `json:"cidr"`
	// Except are CIDRs inside cidr left out of it.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(e, isCIDR(e))",message="ipBlock.except must be CIDRs such as 10.1.0.0/16"
	// +optional
	Except []string `json:"except,omitempty"`
}

// NetworkEgressRule admits connections to peers on ports.
type NetworkEgressRule struct {
	// To are the destinations. Unset: any destination on ports.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	To []NetworkPeer `json:"to,omitempty"`
	// Ports are the destination ports.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Ports []NetworkPort `json:"ports"`
}

// NetworkPort is a destination port.
type NetworkPort struct {
	// Port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// Protocol: TCP, UDP or SCTP.
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	// +kubebuilder:default=TCP
	// +optional
	Protocol corev1.Protocol `json:"protocol,omitempty"`
}

// PodDisruptionBudgetSpec configures a PDB.
type PodDisruptionBudgetSpec struct {
	// MinAvailable pods during voluntary disruptions.
	// +kubebuilder:default=1
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`
}
