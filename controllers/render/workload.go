package render

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"userve.dev/userve/api/v1alpha1"
)

// serverUID is the image's non-root user (distroless "nonroot").
const serverUID = 65532

// ServiceAccount is the identity of the tenant pods. It has no permissions
// and no API token: the server never calls the Kubernetes API.
func ServiceAccount(us *v1alpha1.UserService) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta:                   objectMeta(us, us.Name),
		AutomountServiceAccountToken: ptrTo(false),
	}
}

// DeploymentParams is what the Deployment needs beyond the spec.
type DeploymentParams struct {
	// Image is spec.image, or the operator's --server-image.
	Image    string
	Database string
	Secrets  SecretSources
	// ConfigHash is ConfigHash of the rendered config and the secret values.
	ConfigHash string
}

// Replicas the Deployment asks for: none while the autoscaler decides, zero
// while suspended, else spec.replicas (default 1).
func Replicas(us *v1alpha1.UserService) *int32 {
	switch {
	case us.Spec.Suspend:
		return ptrTo(int32(0))
	case us.Spec.Autoscaling != nil:
		return nil
	case us.Spec.Replicas != nil:
		return ptrTo(*us.Spec.Replicas)
	default:
		return ptrTo(int32(1))
	}
}

// Deployment runs `userve serve` for the tenant (the image's entrypoint with
// the serve arguments, which every userve image understands; an image that
// holds userve-serve beside it, as make image writes, serves from that lean
// binary: docs/server.md, "Two binaries"): non-root, read-only root
// file system, no capabilities, RuntimeDefault seccomp, no API token, probes
// on /readyz and /healthz, config from the ConfigMap and secrets from
// Secrets. The pod template carries the config hash, so config and secret
// changes roll the pods.
func Deployment(us *v1alpha1.UserService, p DeploymentParams) *appsv1.Deployment {
	podLabels := Labels(us)
	pt := us.Spec.PodTemplate
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(us, us.Name),
		Spec: appsv1.DeploymentSpec{
			Replicas:             Replicas(us),
			Selector:             &metav1.LabelSelector{MatchLabels: SelectorLabels(us)},
			RevisionHistoryLimit: ptrTo(int32(3)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						AnnotationConfigHash:                      p.ConfigHash,
						"kubectl.kubernetes.io/default-container": ContainerName,
					},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName:           us.Name,
					AutomountServiceAccountToken: ptrTo(false),
					EnableServiceLinks:           ptrTo(false),
					// The drain sleep plus the server's own shutdown time.
					TerminationGracePeriodSeconds: ptrTo(int64(TerminationGracePeriodSeconds)),
					SecurityContext:               podSecurityContext(),
					Containers:                    []corev1.Container{serverContainer(us, p)},
					Volumes:                       volumes(us),
					NodeSelector:                  pt.NodeSelector,
					Tolerations:                   pt.Tolerations,
					Affinity:                      pt.Affinity,
					TopologySpreadConstraints:     pt.TopologySpreadConstraints,
					PriorityClassName:             pt.PriorityClassName,
				},
			},
		},
	}
}

func serverContainer(us *v1alpha1.UserService, p DeploymentParams) corev1.Container {
	c := hardenedContainer([]string{"serve", "--config", ConfigPath, "--listen", ":8080", "--metrics-listen", ":9090"}, p.Image, ServerResources(us.Spec.Resources))
	c.Env = env(us, p)
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "config", MountPath: ConfigDir, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
	}
	return c
}

// podSecurityContext runs a pod as the image's non-root user.
func podSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptrTo(true),
		RunAsUser:      ptrTo(int64(serverUID)),
		RunAsGroup:     ptrTo(int64(serverUID)),
		FSGroup:        ptrTo(int64(serverUID)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// hardenedContainer is the userve container of a tenant or a pool: the
// ports, probes, security context and drain both share.
func hardenedContainer(args []string, image string, resources corev1.ResourceRequirements) corev1.Container {
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(PortName), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:  ContainerName,
		Image: image,
		Args:  args,
		Ports: []corev1.ContainerPort{
			{Name: PortName, ContainerPort: Port, Protocol: corev1.ProtocolTCP},
			{Name: MetricsPortName, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
		},
		// Readiness follows the store, liveness only the process: a MongoDB
		// outage takes pods out of the Service without restarting them.
		ReadinessProbe: probe("/readyz", 5, 3),
		LivenessProbe:  probe("/healthz", 10, 3),
		StartupProbe:   probe("/healthz", 2, 30),
		Resources:      resources,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptrTo(true),
			AllowPrivilegeEscalation: ptrTo(false),
			ReadOnlyRootFilesystem:   ptrTo(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		// A terminating pod stays in the Service's endpoints until the
		// endpoint controller and every kube-proxy have seen it go (seen on
		// the test node: connections refused for a moment). Sleeping before
		// SIGTERM keeps it serving meanwhile; the image has no shell, so this
		// is the kubelet's own sleep action.
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: PreStopDrainSeconds},
		}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

const (
	// PreStopDrainSeconds is how long a terminating tenant pod keeps serving
	// before it is sent SIGTERM.
	PreStopDrainSeconds = 5
	// TerminationGracePeriodSeconds covers the drain and the server's
	// graceful shutdown (server.ShutdownTimeout, 25 s).
	TerminationGracePeriodSeconds = PreStopDrainSeconds + 25 + 5
)

func env(us *v1alpha1.UserService, p DeploymentParams) []corev1.EnvVar {
	fromSecret := func(name string, s corev1.SecretKeySelector) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &s}}
	}
	e := []corev1.EnvVar{
		fromSecret(v1alpha1.EnvMongoURI, p.Secrets.MongoURI),
		{Name: v1alpha1.EnvMongoDatabase, Value: p.Database},
		fromSecret(v1alpha1.EnvAdminTokens, p.Secrets.AdminTokens),
		fromSecret(v1alpha1.EnvJWTKey, p.Secrets.JWTKey),
	}
	for _, o := range p.Secrets.Optional {
		e = append(e, fromSecret(o.Env, o.Secret))
	}
	return append(e, resourceEnv(us.Spec.Resources)...)
}

// resourceEnv tells the process its limits: the memory limit (always set,
// by the defaults) sizes the memory password checks may hold at once (a
// quarter of it); a CPU limit, when given, sets GOMAXPROCS (userve runs on
// one P unless told otherwise; rounded up by the divisor of 1).
func resourceEnv(spec corev1.ResourceRequirements) []corev1.EnvVar {
	e := []corev1.EnvVar{{Name: v1alpha1.EnvMemoryLimit, ValueFrom: &corev1.EnvVarSource{
		ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resourceQuantity("1")},
	}}}
	if _, ok := spec.Limits[corev1.ResourceCPU]; ok {
		e = append(e, corev1.EnvVar{Name: v1alpha1.EnvGOMAXPROCS, ValueFrom: &corev1.EnvVarSource{
			ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resourceQuantity("1")},
		}})
	}
	return e
}

func volumes(us *v1alpha1.UserService) []corev1.Volume {
	return []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(us)},
			Items:                []corev1.KeyToPath{{Key: ConfigKey, Path: ConfigKey}},
		}}},
		// The root file system is read-only; the server may still want a
		// scratch directory.
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			SizeLimit: ptrTo(resourceQuantity("64Mi")),
		}}},
	}
}

// Service is the tenant's in-cluster endpoint, port 8080 named http. It
// exposes the API only, never the pods' metrics port.
func Service(us *v1alpha1.UserService) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: objectMeta(us, us.Name),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: SelectorLabels(us),
			Ports: []corev1.ServicePort{{
				Name: PortName, Port: Port, TargetPort: intstr.FromString(PortName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}
