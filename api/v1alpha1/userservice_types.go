package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// (The CPU-request rule below compares with literals: a quantity inside
// spec.resources is an int-or-string of unbounded size, and the API server's
// cost budget refuses parsing it with quantity(). The spellings of zero users
// write are listed; any other positive-or-not value is left to the schema.)

// UserServiceSpec declares one tenant's user service. The tenant server reads
// api, profile and verification; everything else tells the operator how to run
// it.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling))",message="spec.replicas and spec.autoscaling are mutually exclusive: remove replicas while autoscaling is on"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.resources) || ((!has(self.resources.requests) || !('cpu' in self.resources.requests) || (self.resources.requests.cpu != 0 && !(self.resources.requests.cpu in ['0', '0m', '0.0', '+0', '0k']))) && (!has(self.resources.limits) || !('cpu' in self.resources.limits) || (self.resources.limits.cpu != 0 && !(self.resources.limits.cpu in ['0', '0m', '0.0', '+0', '0k']))))",message="spec.autoscaling needs a CPU request above zero: the autoscaler scales on CPU use relative to spec.resources.requests.cpu (leave it out to get the default 50m)"
type UserServiceSpec struct {
	// Replicas of the tenant server. Unset means 1, or the autoscaler's
	// choice when autoscaling is on (the two may not be set together).
	// `kubectl scale usvc/NAME --replicas=N` sets this field.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image of the tenant server; defaults to the operator's --server-image.
	// Its entrypoint is run with `serve --config ...`, as every userve image
	// understands; one that holds userve-serve beside the entrypoint (images
	// of make image and the Dockerfile) serves from that lighter binary.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Suspend scales the tenant to zero pods (and removes its autoscaler);
	// its database, Service and credentials are kept.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Mongo says where the tenant's database lives.
	// +kubebuilder:default={}
	// +optional
	Mongo MongoSpec `json:"mongo,omitempty"`

	// DeletionPolicy says what happens to the tenant database when the
	// UserService is deleted: Retain keeps it, Delete drops it. With Delete
	// the UserService stays (phase Deleting, Degraded) until the database is
	// dropped; switching to Retain then lets it go without dropping.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// API configures the REST dialects.
	// +kubebuilder:default={}
	// +optional
	API APISpec `json:"api,omitempty"`

	// AdminTokensSecretRef names a Secret key holding the management API's
	// bearer tokens, comma-separated, each at least 32 bytes (the server
	// refuses to start with a shorter one). Unset: the operator generates one
	// token (64 hex characters) into the tenant's credentials Secret
	// (status.credentialsSecret, key admin-tokens) and keeps it.
	// +optional
	AdminTokensSecretRef *SecretKeyRef `json:"adminTokensSecretRef,omitempty"`

	// Profile declares the tenant's custom profile fields.
	// +optional
	Profile ProfileSpec `json:"profile,omitempty"`

	// Verification configures one-time codes and how they are delivered.
	// +kubebuilder:default={}
	// +optional
	Verification VerificationSpec `json:"verification,omitempty"`

	// Ingress exposes the tenant on a host name; status.endpoint then shows
	// its URL. Unset: no Ingress, the tenant is reachable in the cluster only.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// Autoscaling adds a HorizontalPodAutoscaler on CPU. While it is set the
	// operator leaves the Deployment's replicas to the autoscaler, and
	// spec.replicas must be unset.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Resources of the tenant server container. Each key left out gets a
	// default: requests cpu 50m and memory 64Mi, limits memory 256Mi (no
	// CPU limit); a default request is never above a given limit, nor the
	// default limit below a given request. A CPU limit also sets the
	// server's GOMAXPROCS. With autoscaling the CPU request must be above
	// zero.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// PodTemplate holds scheduling settings copied into the tenant pods.
	// +optional
	PodTemplate PodTemplateSpec `json:"podTemplate,omitempty"`

	// NetworkPolicy, when enabled, confines the tenant pods' traffic:
	// ingress to the API port from the tenant's namespace and the ingress
	// controller (or the peers named here), to the metrics port from
	// metricsFrom only; egress to DNS, MongoDB and the code delivery targets
	// only.
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// PodDisruptionBudget adds a PodDisruptionBudget for the tenant pods.
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`

	// Pool places the tenant in the UserServicePool of this name: the pool's
	// pods serve it, and its Deployment goes away once they do. Unset: a
	// dedicated Deployment. Setting or clearing it moves the tenant with
	// its data, tokens, Service and endpoint; a pool that does not exist,
	// whose namespaceSelector does not select the tenant's namespace, or
	// that is full refuses it (condition Placed=False) and the tenant stays
	// where it was. See docs/pools.md.
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Pool string `json:"pool,omitempty"`

	// WeChat turns on WeChat mini-program login on the end-user API
	// (POST /api/v2/auth/wechat and /api/v2/user/wechat...). Unset: off.
	// +optional
	WeChat *WeChatSpec `json:"wechat,omitempty"`

	// Events sends user and wallet events to the tenant's backend
	// (docs/events.md). Unset: none are recorded or sent.
	// +optional
	Events EventsSpec `json:"events,omitempty"`
}

// WeChatSpec is the tenant's WeChat mini-program.
type WeChatSpec struct {
	// AppID of the mini-program (wx followed by 16 hex digits, as the
	// WeChat console shows it; any 1-64 letters, digits, '_' or '-' are
	// accepted for test apps).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	AppID string `json:"appID"`
	// AppSecretRef names the Secret key holding the mini-program's
	// AppSecret; its value reaches the server as USERVE_WECHAT_APP_SECRET.
	// Session keys are stored encrypted under a key derived from it.
	AppSecretRef SecretKeyRef `json:"appSecretRef"`
	// APIBaseURL is where WeChat's server API is (tests and `make dev`
	// point it at a local fake).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="wechat.apiBaseURL must be an http:// or https:// URL"
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="wechat.apiBaseURL must not carry a query or fragment"
	// +kubebuilder:default="https://api.weixin.qq.com"
	// +optional
	APIBaseURL string `json:"apiBaseURL,omitempty"`
	// CreateUsers lets a WeChat login create a user for a WeChat account
	// nobody has linked yet. false: such a login is a 404 until a signed-in
	// user links the account (PUT /api/v2/user/wechat).
	// +kubebuilder:default=true
	// +optional
	CreateUsers *bool `json:"createUsers,omitempty"`
}

// DeletionPolicy is Retain or Delete.
type DeletionPolicy string

const (
	DeletionPolicyRetain DeletionPolicy = "Retain"
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// SecretKeyRef names one key of a Secret in the UserService's namespace. The
// operator labels such a Secret miniapp.userve.dev/watched=true so that a new
// value reaches the tenant's pods at once (they are rolled).
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// MongoSpec locates the tenant database.
// +kubebuilder:validation:XValidation:rule="has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)",message="spec.mongo.database is immutable: it can only be set when the UserService is created"
type MongoSpec struct {
	// URISecretRef names the Secret key holding the MongoDB URI. Unset: the
	// operator's --default-mongo-uri-secret.
	// +optional
	URISecretRef *SecretKeyRef `json:"uriSecretRef,omitempty"`

	// Database name. Unset: "<namespace>_<name>" (which must then fit in 63
	// characters). Immutable: it can only be given when the UserService is
	// created, so a tenant never moves to another (empty) database. A
	// database another UserService uses is refused (reason DatabaseInUse),
	// and so is one that holds data but no ownership record naming this
	// UserService (reason DatabaseNotOwned). A name of the form
	// "<namespace>_<name>" is another namespace's default name and refused
	// outside that namespace (reason InvalidDatabase). MongoDB's own
	// databases (admin, local, config) are refused at admission.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['admin', 'local', 'config'])",message="spec.mongo.database may not be admin, local or config: those are MongoDB's own databases"
	// +optional
	Database string `json:"database,omitempty"`
}

// UserServiceStatus is what the operator observed.
type UserServiceStatus struct {
	// Phase summarizes the conditions: Pending, Ready, Degraded, Suspended
	// or Deleting.
	// +kubebuilder:validation:Enum=Pending;Ready;Degraded;Suspended;Deleting
	// +optional
	Phase string `json:"phase,omitempty"`
	// Conditions, following kstatus: Ready (normal-true: the tenant serves
	// its current spec), Progressing and Degraded (abnormal-true: a rollout is
	// under way; the operator cannot converge, see the reason), and
	// DatabaseReady (the operator reached the tenant's MongoDB and the
	// database is the tenant's), and DatabaseIsolated (whether the store
	// confines the tenant's database user to its database).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation whose desired objects were last
	// applied successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas is the number of tenant pods (the scale subresource's status).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas is the number of ready tenant pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Selector of the tenant pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
	// Endpoint is the tenant's base URL inside the cluster (or its ingress).
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Database is the MongoDB database name in use.
	// +optional
	Database string `json:"database,omitempty"`
	// Pool is the UserServicePool holding a place for the tenant: its
	// Secret is in the pool's namespace. Empty: dedicated.
	// +optional
	Pool string `json:"pool,omitempty"`
	// CredentialsSecret names the Secret holding the generated admin tokens
	// (key admin-tokens) and the JWT signing key (key jwt-key).
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// Phases.
const (
	PhasePending   = "Pending"
	PhaseReady     = "Ready"
	PhaseDegraded  = "Degraded"
	PhaseSuspended = "Suspended"
	PhaseDeleting  = "Deleting"
)

// Condition types.
const (
	ConditionReady         = "Ready"
	ConditionProgressing   = "Progressing"
	ConditionDegraded      = "Degraded"
	ConditionDatabaseReady = "DatabaseReady"
	// ConditionDatabaseIsolated: True when the tenant's own database user
	// holds readWrite on its database only; False where the store cannot
	// confine it (FerretDB v1) or credentials are shared; Unknown for a
	// tenant's own URI.
	ConditionDatabaseIsolated = "DatabaseIsolated"
)

// UserService is one tenant's user service: a Deployment of `userve serve`
// with its Service and configuration, backed by the tenant's own MongoDB
// database. Its name must be a DNS label because it names the tenant's
// Service.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=usvc,categories=userve
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`,priority=1
// +kubebuilder:printcolumn:name="Database",type=string,JSONPath=`.status.database`,priority=1
// +kubebuilder:printcolumn:name="Pool",type=string,JSONPath=`.status.pool`,priority=1
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lower case letters, digits and '-', starting with a letter, at most 63 characters): it names the tenant's Service"
type UserService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec UserServiceSpec `json:"spec,omitempty"`
	// +optional
	Status UserServiceStatus `json:"status,omitempty"`
}

// UserServiceList is a list of UserServices.
//
// +kubebuilder:object:root=true
type UserServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UserService `json:"items"`
}
