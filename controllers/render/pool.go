package render

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"userve.dev/userve/api/v1alpha1"
)

// The objects of a UserServicePool, all in the pool's namespace and
// controlled by the (cluster-scoped) pool: a ServiceAccount, a Role that
// reads Secrets of that namespace only (the tenant Secrets the operator
// writes there) and patches the pool's own pods (the ack annotation), its
// RoleBinding, the Deployment running `userve pool`, its Service, and a
// PodDisruptionBudget or HorizontalPodAutoscaler when asked for.

const (
	// PoolAppName is the app.kubernetes.io/name of pool objects.
	PoolAppName = "userve-pool"
	// The pool server's resource defaults (spec.resources leaves a key
	// out): it holds many tenants, each built on first request.
	DefaultPoolCPURequest    = "250m"
	DefaultPoolMemoryRequest = "256Mi"
	DefaultPoolMemoryLimit   = "1Gi"
	// DefaultPoolReplicas: a pool carries many tenants, so one pod going
	// away (a node drain, a crash) must not take them all down.
	DefaultPoolReplicas = 2
)

// PoolComponent is the component label of a pool's objects and pods.
const PoolComponent = "pool"

// PoolObjectName names every object of the pool in its namespace.
func PoolObjectName(pool *v1alpha1.UserServicePool) string { return "userve-pool-" + pool.Name }

// PoolSelectorLabels select the pool's pods.
func PoolSelectorLabels(pool *v1alpha1.UserServicePool) map[string]string {
	return map[string]string{LabelName: PoolAppName, LabelInstance: pool.Name}
}

// PoolLabels of every object of the pool. The EndpointSlice controller
// copies the Service's labels onto its slices, so the pool's slices carry
// the managed-by label the operator's cache selects on.
func PoolLabels(pool *v1alpha1.UserServicePool) map[string]string {
	l := PoolSelectorLabels(pool)
	l[LabelComponent] = PoolComponent
	l[LabelPartOf] = "userve"
	l[LabelManagedBy] = ManagedBy
	return l
}

// PoolOwnerReference makes the pool the controller of an object.
func PoolOwnerReference(pool *v1alpha1.UserServicePool) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "UserServicePool", Name: pool.Name, UID: pool.UID,
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

func poolMeta(pool *v1alpha1.UserServicePool, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: PoolObjectName(pool), Namespace: namespace, Labels: PoolLabels(pool),
		OwnerReferences: []metav1.OwnerReference{PoolOwnerReference(pool)},
	}
}

// PoolNamespace is where the pool runs: spec.namespace, else def (the
// operator's namespace).
func PoolNamespace(pool *v1alpha1.UserServicePool, def string) string {
	if pool.Spec.Namespace != "" {
		return pool.Spec.Namespace
	}
	return def
}

// PoolServiceAccount is the pool pods' identity; the pods mount its token
// (they watch Secrets), the account itself does not hand one out.
func PoolServiceAccount(pool *v1alpha1.UserServicePool, namespace string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: poolMeta(pool, namespace), AutomountServiceAccountToken: ptrTo(false)}
}

// PoolRole grants, in the pool's namespace only: reading Secrets (the
// tenant Secrets, watched by label) and patching pods (a pool pod records
// the tenant Secrets it has applied on its own Pod, v1alpha1.PoolAppliedAnnotation).
// A Role cannot reach another namespace: a pool pod never reads a
// tenant's namespace.
func PoolRole(pool *v1alpha1.UserServicePool, namespace string) *rbacv1.Role {
	return &rbacv1.Role{
		ObjectMeta: poolMeta(pool, namespace),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}},
		},
	}
}

// PoolRoleBinding binds PoolRole to the pool's ServiceAccount.
func PoolRoleBinding(pool *v1alpha1.UserServicePool, namespace string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: poolMeta(pool, namespace),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: PoolObjectName(pool)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: PoolObjectName(pool), Namespace: namespace}},
	}
}

// PoolReplicas the Deployment asks for: none while the autoscaler decides,
// else spec.replicas (default DefaultPoolReplicas).
func PoolReplicas(pool *v1alpha1.UserServicePool) *int32 {
	switch {
	case pool.Spec.Autoscaling != nil:
		return nil
	case pool.Spec.Replicas != nil:
		return ptrTo(*pool.Spec.Replicas)
	}
	return ptrTo(int32(DefaultPoolReplicas))
}

// PoolResources is spec.resources with the pool's defaults filled in.
func PoolResources(spec corev1.ResourceRequirements) corev1.ResourceRequirements {
	return withDefaults(spec, DefaultPoolCPURequest, DefaultPoolMemoryRequest, DefaultPoolMemoryLimit)
}

// PoolArgs are the `userve pool` arguments; optional flags only when the
// spec sets them (the process's own defaults apply otherwise).
func PoolArgs(pool *v1alpha1.UserServicePool) []string {
	args := []string{"pool", "--pool", pool.Name, "--listen", ":" + strconv.Itoa(Port), "--metrics-listen", ":" + strconv.Itoa(MetricsPort)}
	if d := pool.Spec.IdleTimeout; d != nil {
		args = append(args, "--idle-timeout", d.Duration.String())
	}
	if n := pool.Spec.TenantMaxInflight; n != nil {
		args = append(args, "--tenant-max-inflight", strconv.Itoa(int(*n)))
	}
	if n := pool.Spec.MaxExecuting; n != nil {
		args = append(args, "--max-executing", strconv.Itoa(int(*n)))
	}
	for _, cidr := range pool.Spec.Egress.AllowCIDRs {
		args = append(args, "--allow-egress", cidr)
	}
	return args
}

// PoolDeployment runs `userve pool` with the same hardening as a tenant's
// Deployment (non-root, read-only root, no capabilities, probes, drain
// before SIGTERM), its namespace and pod name from the downward API.
func PoolDeployment(pool *v1alpha1.UserServicePool, namespace, image string) *appsv1.Deployment {
	pt := pool.Spec.PodTemplate
	c := hardenedContainer(PoolArgs(pool), image, PoolResources(pool.Spec.Resources))
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	c.Env = []corev1.EnvVar{fieldEnv(v1alpha1.EnvPodNamespace, "metadata.namespace"), fieldEnv(v1alpha1.EnvPodName, "metadata.name")}
	c.Env = append(c.Env, resourceEnv(pool.Spec.Resources)...)
	c.VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	return &appsv1.Deployment{
		ObjectMeta: poolMeta(pool, namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas:             PoolReplicas(pool),
			Selector:             &metav1.LabelSelector{MatchLabels: PoolSelectorLabels(pool)},
			RevisionHistoryLimit: ptrTo(int32(3)),
			// Never fewer ready pods than asked for during a rollout: every
			// pod serves every tenant.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptrTo(intstr.FromInt32(0)), MaxSurge: ptrTo(intstr.FromInt32(1)),
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      PoolLabels(pool),
					Annotations: map[string]string{"kubectl.kubernetes.io/default-container": ContainerName},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: PoolObjectName(pool),
					// The pool watches its tenant Secrets: it needs a token.
					AutomountServiceAccountToken:  ptrTo(true),
					EnableServiceLinks:            ptrTo(false),
					TerminationGracePeriodSeconds: ptrTo(int64(TerminationGracePeriodSeconds)),
					SecurityContext:               podSecurityContext(),
					Containers:                    []corev1.Container{c},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
						SizeLimit: ptrTo(resourceQuantity("64Mi")),
					}}}},
					NodeSelector:              pt.NodeSelector,
					Tolerations:               pt.Tolerations,
					Affinity:                  pt.Affinity,
					TopologySpreadConstraints: pt.TopologySpreadConstraints,
					PriorityClassName:         pt.PriorityClassName,
				},
			},
		},
	}
}

// PoolService selects the pool's pods on the API port. Tenants' own
// Services mirror its ready endpoints (TenantEndpointSlice).
func PoolService(pool *v1alpha1.UserServicePool, namespace string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: poolMeta(pool, namespace),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: PoolSelectorLabels(pool),
			Ports: []corev1.ServicePort{{
				Name: PortName, Port: Port, TargetPort: intstr.FromString(PortName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// PoolPodDisruptionBudget lets at most one pool pod go at a time; nil
// when the pool may run a single pod (a budget would block node drains).
func PoolPodDisruptionBudget(pool *v1alpha1.UserServicePool, namespace string) *policyv1.PodDisruptionBudget {
	floor := int32(0)
	if r := PoolReplicas(pool); r != nil {
		floor = *r
	} else if as := pool.Spec.Autoscaling; as != nil {
		floor = int32(v1alpha1.DefaultAutoscalingMinReplicas)
		if as.MinReplicas != nil {
			floor = *as.MinReplicas
		}
	}
	if floor <= 1 {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: poolMeta(pool, namespace),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptrTo(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: PoolSelectorLabels(pool)},
		},
	}
}

// PoolHorizontalPodAutoscaler scales the pool on CPU; nil without
// spec.autoscaling.
func PoolHorizontalPodAutoscaler(pool *v1alpha1.UserServicePool, namespace string) *autoscalingv2.HorizontalPodAutoscaler {
	as := pool.Spec.Autoscaling
	if as == nil {
		return nil
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: poolMeta(pool, namespace),
		Spec:       hpaSpec(as, PoolObjectName(pool)),
	}
}
