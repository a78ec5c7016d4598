package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UserServicePoolSpec declares a shared pool: `userve pool` pods that serve
// many tenants (UserServices with spec.pool naming the pool), each with its
// own database, credentials and limits (docs/pools.md).
//
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling))",message="spec.replicas and spec.autoscaling are mutually exclusive: remove replicas while autoscaling is on"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.resources) || ((!has(self.resources.requests) || !('cpu' in self.resources.requests) || (self.resources.requests.cpu != 0 && !(self.resources.requests.cpu in ['0', '0m', '0.0', '+0', '0k']))) && (!has(self.resources.limits) || !('cpu' in self.resources.limits) || (self.resources.limits.cpu != 0 && !(self.resources.limits.cpu in ['0', '0m', '0.0', '+0', '0k']))))",message="spec.autoscaling needs a CPU request above zero: the autoscaler scales on CPU use relative to spec.resources.requests.cpu (leave it out to get the pool's default)"
// +kubebuilder:validation:XValidation:rule="has(self.__namespace__) == has(oldSelf.__namespace__) && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)",message="spec.namespace is immutable: create another pool to run in another namespace"
type UserServicePoolSpec struct {
	// Replicas of the pool server. Unset means 2 (a pool carries many
	// tenants: one pod going away must not take them all down), or the
	// autoscaler's choice when autoscaling is on.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling adds a HorizontalPodAutoscaler on CPU; spec.replicas must
	// then be unset.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Image of the pool server; defaults to the operator's --server-image
	// (the same image serves `userve serve` and `userve pool`).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the pool server container. Each key left out gets a
	// default: requests cpu 250m and memory 256Mi, limits memory 1Gi.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// PodTemplate holds scheduling settings copied into the pool pods.
	// +optional
	PodTemplate PodTemplateSpec `json:"podTemplate,omitempty"`

	// MaxTenants is how many UserServices the pool accepts. A tenant asking
	// for a full pool stays where it is (condition Placed=False, reason
	// PoolFull). Lowering it below the current count moves no tenant out.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=1000
	// +optional
	MaxTenants int32 `json:"maxTenants,omitempty"`

	// NamespaceSelector selects the namespaces whose UserServices may be
	// placed in the pool, by the namespaces' labels (every namespace has
	// kubernetes.io/metadata.name=<its name>). Unset: no namespace may (a
	// pool is a platform decision: opting every namespace in takes {}).
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'] && ((e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0)))",message="spec.namespaceSelector.matchExpressions: the operator must be In or NotIn (with values), Exists or DoesNotExist (without)"
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Namespace the pool runs in: its pods, and the Secret per tenant the
	// operator writes for them. Unset: the operator's namespace. Use a
	// namespace of its own: the pool pods may read every Secret in it.
	// Immutable.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// IdleTimeout: a tenant's server (store client, router, caches) is
	// closed after this long without a request, and built again on the
	// next one (`userve pool --idle-timeout`). Unset: the pool's default.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="spec.idleTimeout must be between 1s and 24h"
	// +optional
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`

	// TenantMaxInflight bounds each tenant's concurrent requests in a pool
	// pod (`userve pool --tenant-max-inflight`), so that one busy tenant
	// cannot starve the others. Unset: the pool's default.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	TenantMaxInflight *int32 `json:"tenantMaxInflight,omitempty"`

	// MaxExecuting is how many requests a pool pod executes at once, all
	// tenants together (`userve pool --max-executing`); the others wait
	// for a seat, given fairly between tenants. Unset: 4 per GOMAXPROCS
	// (the pod's CPU limit, else the node's CPUs). Raise it for a store
	// far across the network (docs/pools.md, "Fairness").
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxExecuting *int32 `json:"maxExecuting,omitempty"`

	// Egress governs the tenants' outbound deliveries (webhooks, SMTP,
	// WeChat), which leave from the pool's namespace.
	// +optional
	Egress PoolEgressSpec `json:"egress,omitempty"`
}

// PoolEgressSpec says where pooled tenants' deliveries may go.
type PoolEgressSpec struct {
	// AllowCIDRs are address ranges a delivery may reach although they are
	// loopback, link-local, private or cluster ranges (refused by default,
	// after DNS resolution), e.g. an SMTP relay at 10.0.3.7/32. Each is
	// passed as `userve pool --allow-egress CIDR`.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="spec.egress.allowCIDRs must be CIDRs such as 10.0.3.7/32 or fd00::/64"
	// +optional
	AllowCIDRs []string `json:"allowCIDRs,omitempty"`
}

// UserServicePoolStatus is what the operator observed.
type UserServicePoolStatus struct {
	// Conditions, following kstatus: Ready (normal-true: the pool's pods
	// are available), Reconciling and Stalled (abnormal-true: a rollout is
	// under way; the operator cannot converge, see the reason).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation whose objects were last applied
	// successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Tenants placed in the pool.
	// +optional
	Tenants int32 `json:"tenants"`
	// Replicas is the number of pool pods.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas is the number of ready pool pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// Namespace the pool runs in.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Condition types of a pool (kstatus).
const (
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// ConditionPlaced is a UserService's placement: True when it is where
// spec.pool asks (in that pool, or dedicated); False with the reason why
// not (PoolNotFound, NamespaceNotAllowed, PoolFull: the tenant stays where
// it was) or while it moves (MovingIn, MovingOut).
const ConditionPlaced = "Placed"

// PoolAppliedAnnotation is on every pool pod: the highest resourceVersion
// of its pool's tenant Secrets that the pod has applied (see
// /work/signals/pool-ack.md, docs/pools.md). The operator switches a
// tenant's traffic to the pool only once every ready pod has applied the
// tenant's Secret.
const PoolAppliedAnnotation = "miniapp.userve.dev/pool-secrets-applied"

// UserServicePool is a shared pool of `userve pool` pods serving many
// tenants. Cluster-scoped: the platform owns it, namespaces opt in through
// spec.namespaceSelector.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=usp,categories=userve
// +kubebuilder:printcolumn:name="Tenants",type=integer,JSONPath=`.status.tenants`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxTenants`,priority=1
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.namespace`,priority=1
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label of at most 40 characters (lower case letters, digits and '-', starting with a letter): it names the pool's objects"
type UserServicePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec UserServicePoolSpec `json:"spec,omitempty"`
	// +optional
	Status UserServicePoolStatus `json:"status,omitempty"`
}

// UserServicePoolList is a list of UserServicePools.
//
// +kubebuilder:object:root=true
type UserServicePoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UserServicePool `json:"items"`
}
