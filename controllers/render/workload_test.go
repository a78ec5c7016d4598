package render

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"

	"userve.dev/userve/api/v1alpha1"
)

func TestServiceAccountHasNoToken(t *testing.T) {
	us := tenant()
	sa := ServiceAccount(us)
	assertOwned(t, us, sa, "acme")
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("service account must not automount a token")
	}
}

func params(us *v1alpha1.UserService) DeploymentParams {
	src, err := Sources(us, &SecretLocation{Namespace: "ops", Name: "mongo", Key: "uri"})
	if err != nil {
		panic(err)
	}
	return DeploymentParams{Image: "example.com/userve:1", Database: "shop_acme", Secrets: src, ConfigHash: "h1"}
}

func TestDeploymentRunsTheServerWithTheContract(t *testing.T) {
	us := tenant()
	d := Deployment(us, params(us))
	assertOwned(t, us, d, "acme")
	pod := d.Spec.Template
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(pod.Labels)) {
		t.Fatalf("selector %v does not match the pod labels %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	if pod.Annotations[AnnotationConfigHash] != "h1" {
		t.Errorf("config hash annotation = %q", pod.Annotations[AnnotationConfigHash])
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("containers = %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.Image != "example.com/userve:1" {
		t.Errorf("image = %q", c.Image)
	}
	if want := []string{"serve", "--config", "/etc/userve/userservice.yaml", "--listen", ":8080", "--metrics-listen", ":9090"}; !slices.Equal(c.Args, want) {
		t.Errorf("args = %q, want %q", c.Args, want)
	}
	// The image's entrypoint runs: any userve image (spec.image of an older
	// release too) serves; one holding userve-serve hands over to it.
	if c.Command != nil {
		t.Errorf("command = %q, want the image's entrypoint", c.Command)
	}
	// The metrics port is named "metrics": a PodMonitor selects it by name.
	if len(c.Ports) != 2 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 ||
		c.Ports[1].Name != "metrics" || c.Ports[1].ContainerPort != 9090 {
		t.Errorf("ports = %+v", c.Ports)
	}
	for path, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("probe on %s = %+v", path, p)
		}
	}
	// The config volume mounts the ConfigMap's key where --config points.
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath == ConfigDir && m.ReadOnly {
			for _, v := range pod.Spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "acme-config" && v.ConfigMap.Items[0].Key == ConfigKey {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("the ConfigMap is not mounted read-only at %s: %+v / %+v", ConfigDir, c.VolumeMounts, pod.Spec.Volumes)
	}
	if pod.Spec.ServiceAccountName != "acme" {
		t.Errorf("service account = %q", pod.Spec.ServiceAccountName)
	}
}

func TestDeploymentIsLockedDown(t *testing.T) {
	us := tenant()
	pod := Deployment(us, params(us)).Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pods must not mount an API token")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context = %+v", psc)
	}
	sc := pod.Containers[0].SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container security context = %+v", sc)
	}
}

// A terminating pod keeps serving while the endpoints catch up, and gets
// the time to drain and shut down before it is killed.
func TestDeploymentDrainsBeforeStopping(t *testing.T) {
	us := tenant()
	pod := Deployment(us, params(us)).Spec.Template.Spec
	lc := pod.Containers[0].Lifecycle
	if lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil || lc.PreStop.Sleep.Seconds != PreStopDrainSeconds || lc.PreStop.Exec != nil {
		t.Fatalf("preStop = %+v, want the kubelet's sleep action of %d s (the image has no shell)", lc, PreStopDrainSeconds)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < PreStopDrainSeconds+25 {
		t.Errorf("terminationGracePeriodSeconds = %v, want at least the drain plus the server's 25 s shutdown", g)
	}
}

func TestDeploymentEnvironment(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: "https://x", SecretRef: &v1alpha1.SecretKeyRef{Name: "hook", Key: "hmac"}}}
	})
	env := map[string]corev1.EnvVar{}
	for _, e := range Deployment(us, params(us)).Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	ref := func(name string) string {
		e, ok := env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s is not read from a Secret: %+v", name, e)
			return ""
		}
		return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
	}
	if got := ref(v1alpha1.EnvMongoURI); got != "acme-credentials/mongo-uri" {
		t.Errorf("%s from %s", v1alpha1.EnvMongoURI, got)
	}
	if got := ref(v1alpha1.EnvAdminTokens); got != "acme-credentials/admin-tokens" {
		t.Errorf("%s from %s", v1alpha1.EnvAdminTokens, got)
	}
	if got := ref(v1alpha1.EnvJWTKey); got != "acme-credentials/jwt-key" {
		t.Errorf("%s from %s", v1alpha1.EnvJWTKey, got)
	}
	if got := ref(v1alpha1.EnvWebhookSecret); got != "hook/hmac" {
		t.Errorf("%s from %s", v1alpha1.EnvWebhookSecret, got)
	}
	if env[v1alpha1.EnvMongoDatabase].Value != "shop_acme" {
		t.Errorf("%s = %q", v1alpha1.EnvMongoDatabase, env[v1alpha1.EnvMongoDatabase].Value)
	}
	if _, ok := env[v1alpha1.EnvSMTPPassword]; ok {
		t.Errorf("%s set without SMTP configured", v1alpha1.EnvSMTPPassword)
	}
	if _, ok := env[v1alpha1.EnvGOMAXPROCS]; ok {
		t.Errorf("%s set without a CPU limit", v1alpha1.EnvGOMAXPROCS)
	}
}

func TestDeploymentTakesGOMAXPROCSFromTheCPULimit(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}
	})
	var got *corev1.EnvVar
	for _, e := range Deployment(us, params(us)).Spec.Template.Spec.Containers[0].Env {
		if e.Name == v1alpha1.EnvGOMAXPROCS {
			got = &e
		}
	}
	if got == nil || got.ValueFrom == nil || got.ValueFrom.ResourceFieldRef == nil {
		t.Fatalf("%s not from the CPU limit: %+v", v1alpha1.EnvGOMAXPROCS, got)
	}
	// A divisor of 1 makes the kubelet round 1500m up to 2.
	if ref := got.ValueFrom.ResourceFieldRef; ref.Resource != "limits.cpu" || ref.Divisor.String() != "1" {
		t.Errorf("%s from %s divided by %s; want limits.cpu divided by 1", v1alpha1.EnvGOMAXPROCS, ref.Resource, ref.Divisor.String())
	}
}

// The server learns its memory limit in bytes, to size its password-check
// budget (server/auth's gate).
func TestDeploymentPassesTheMemoryLimit(t *testing.T) {
	us := tenant()
	var got *corev1.EnvVar
	for _, e := range Deployment(us, params(us)).Spec.Template.Spec.Containers[0].Env {
		if e.Name == v1alpha1.EnvMemoryLimit {
			got = &e
		}
	}
	if got == nil || got.ValueFrom == nil || got.ValueFrom.ResourceFieldRef == nil {
		t.Fatalf("%s not from the memory limit: %+v", v1alpha1.EnvMemoryLimit, got)
	}
	if ref := got.ValueFrom.ResourceFieldRef; ref.Resource != "limits.memory" || ref.Divisor.String() != "1" {
		t.Errorf("%s from %s divided by %s; want limits.memory in bytes", v1alpha1.EnvMemoryLimit, ref.Resource, ref.Divisor.String())
	}
}

func TestDeploymentReplicas(t *testing.T) {
	five := int32(5)
	cases := []struct {
		name string
		spec func(*v1alpha1.UserService)
		want *int32
	}{
		{"default", func(*v1alpha1.UserService) {}, ptrTo(int32(1))},
		{"spec.replicas", func(u *v1alpha1.UserService) { u.Spec.Replicas = &five }, &five},
		{"autoscaling leaves replicas to the HPA", func(u *v1alpha1.UserService) {
			u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 3}
		}, nil},
		{"suspend", func(u *v1alpha1.UserService) { u.Spec.Replicas = &five; u.Spec.Suspend = true }, ptrTo(int32(0))},
		{"suspend with autoscaling", func(u *v1alpha1.UserService) {
			u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 3}
			u.Spec.Suspend = true
		}, ptrTo(int32(0))},
	}
	for _, c := range cases {
		us := tenant(c.spec)
		got := Deployment(us, params(us)).Spec.Replicas
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("%s: replicas = %v, want %v", c.name, deref(got), deref(c.want))
		}
	}
}

func deref(p *int32) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func TestDeploymentCarriesResourcesAndScheduling(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}
		u.Spec.PodTemplate = v1alpha1.PodTemplateSpec{
			NodeSelector:      map[string]string{"pool": "users"},
			Tolerations:       []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			PriorityClassName: "tenant",
		}
	})
	pod := Deployment(us, params(us)).Spec.Template.Spec
	if got := pod.Containers[0].Resources.Limits[corev1.ResourceMemory]; got.String() != "256Mi" {
		t.Errorf("memory limit = %s", got.String())
	}
	if pod.NodeSelector["pool"] != "users" || len(pod.Tolerations) != 1 || pod.PriorityClassName != "tenant" {
		t.Errorf("scheduling not copied: %+v %+v %q", pod.NodeSelector, pod.Tolerations, pod.PriorityClassName)
	}
}

func TestServiceExposesPort8080(t *testing.T) {
	us := tenant()
	s := Service(us)
	assertOwned(t, us, s, "acme")
	// Only the API: the pods' metrics port is not reachable through the
	// Service (nor, therefore, through the Ingress).
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 8080 || s.Spec.Ports[0].TargetPort.StrVal != "http" || s.Spec.Ports[0].Name != "http" {
		t.Errorf("ports = %+v", s.Spec.Ports)
	}
	if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(Deployment(us, params(us)).Spec.Template.Labels)) {
		t.Error("the Service does not select the tenant's pods")
	}
}
