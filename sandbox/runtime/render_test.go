package runtime

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// objects is a Lookup over in-memory objects: Render is a pure function of
// the template and what it refers to.
type objects struct {
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

func (o objects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (o objects) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	if c, ok := o.configMaps[ns+"/"+name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

// tenantDeployment is shaped like the operator's (the briefing's contract).
func tenantDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "acme"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "acme"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{
						Name:    "server",
						Image:   "userve:1",
						Command: []string{"/userve"},
						Args:    []string{"serve", "--config", "/etc/userve/userservice.yaml", "--listen", ":8080", "--metrics-listen", ":9090"},
						Env: []corev1.EnvVar{
							{Name: "USERVE_MONGO_URI", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "acme-credentials"}, Key: "mongo-uri"}}},
							{Name: "USERVE_ADMIN_TOKENS", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "acme-credentials"}, Key: "admin-tokens"}}},
							{Name: "LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "acme-config"}, Key: "level"}}},
							{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "CONFIG", Value: "/etc/userve/userservice.yaml"},
							{Name: "GREETING", Value: "$(POD) says $$(hi) $(UNDEFINED)"},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/userve", ReadOnly: true},
							{Name: "tmp", MountPath: "/tmp"},
						},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "acme-config"},
							Items:                []corev1.KeyToPath{{Key: "userservice.yaml", Path: "userservice.yaml"}},
						}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

func tenantObjects() objects {
	return objects{
		secrets: map[string]*corev1.Secret{"shop/acme-credentials": {Data: map[string][]byte{
			"mongo-uri": []byte("mongodb://127.0.0.1:27017/"), "admin-tokens": []byte("tok1,tok2"),
		}}},
		configMaps: map[string]*corev1.ConfigMap{"shop/acme-config": {Data: map[string]string{
			"userservice.yaml": "kind: UserService\n", "level": "debug", "unused": "x",
		}}},
	}
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestRenderTenantDeployment(t *testing.T) {
	pod := Pod{Namespace: "shop", Name: "acme-1", Dir: "/state/pods/shop/acme-1", Host: "127.0.0.1", Port: 41000, MetricsPort: 41001}
	l, err := Render(context.Background(), tenantObjects(), tenantDeployment(), pod, "/bin/userve")
	if err != nil {
		t.Fatal(err)
	}
	// Each replica gets its own metrics port: the template's :9090 would
	// collide between local processes.
	wantArgv := []string{"/bin/userve", "serve", "--config", "/state/pods/shop/acme-1/volumes/config/userservice.yaml", "--listen", "127.0.0.1:41000", "--metrics-listen", "127.0.0.1:41001"}
	if !reflect.DeepEqual(l.Argv, wantArgv) {
		t.Errorf("argv\n got %q\nwant %q", l.Argv, wantArgv)
	}
	env := envMap(l.Env)
	for k, want := range map[string]string{
		"USERVE_MONGO_URI":    "mongodb://127.0.0.1:27017/",
		"USERVE_ADMIN_TOKENS": "tok1,tok2",
		"LEVEL":               "debug",
		"POD":                 "acme-1",
		"CONFIG":              "/state/pods/shop/acme-1/volumes/config/userservice.yaml",
		"GREETING":            "acme-1 says $(hi) $(UNDEFINED)",
		"HOME":                "/state/pods/shop/acme-1",
		"TMPDIR":              "/state/pods/shop/acme-1/tmp",
		"HOSTNAME":            "acme-1",
	} {
		if env[k] != want {
			t.Errorf("env %s = %q, want %q", k, env[k], want)
		}
	}
	// Only the listed item is materialized, with the ConfigMap's content.
	wantFiles := map[string]File{filepath.Join("volumes", "config", "userservice.yaml"): {Data: []byte("kind: UserService\n"), Mode: 0o644}}
	if !reflect.DeepEqual(l.Files, wantFiles) {
		t.Errorf("files %v, want %v", l.Files, wantFiles)
	}
	if !slices.Contains(l.Dirs, filepath.Join("volumes", "tmp")) {
		t.Errorf("emptyDir not created: %v", l.Dirs)
	}
	if l.Readiness.Path != "/readyz" {
		t.Errorf("readiness %+v", l.Readiness)
	}
	if l.Grace.Seconds() != 5 {
		t.Errorf("grace %s, want the template's 5s", l.Grace)
	}
	if l.WorkDir != pod.Dir {
		t.Errorf("workdir %q", l.WorkDir)
	}
}

func TestRenderFailsOnMissingReferences(t *testing.T) {
	pod := Pod{Namespace: "shop", Name: "acme-0", Dir: "/p", Host: "127.0.0.1", Port: 1}
	cases := map[string]func(objects){
		"secret acme-credentials": func(o objects) { delete(o.secrets, "shop/acme-credentials") },
		`no key "level"`:          func(o objects) { delete(o.configMaps["shop/acme-config"].Data, "level") },
		"configmap acme-config":   func(o objects) { delete(o.configMaps, "shop/acme-config") },
	}
	for want, breakIt := range cases {
		o := tenantObjects()
		breakIt(o)
		_, err := Render(context.Background(), o, tenantDeployment(), pod, "/bin/userve")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
}

func TestRenderOptionalReferencesMayBeMissing(t *testing.T) {
	d := tenantDeployment()
	c := &d.Spec.Template.Spec.Containers[0]
	c.Env = []corev1.EnvVar{{Name: "HOOK", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: ptr.To(true)}}}}
	c.EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "acme-config"}}, Prefix: "CM_"},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: ptr.To(true)}},
	}
	d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{SecretName: "absent", Optional: ptr.To(true)}}})
	l, err := Render(context.Background(), tenantObjects(), d, Pod{Namespace: "shop", Name: "acme-0", Dir: "/p"}, "/u")
	if err != nil {
		t.Fatal(err)
	}
	env := envMap(l.Env)
	if _, set := env["HOOK"]; set {
		t.Error("optional missing secret key set HOOK")
	}
	if env["CM_level"] != "debug" || env["CM_unused"] != "x" {
		t.Errorf("envFrom: %v", env)
	}
}

func TestRenderSecretVolumeAndItemsEscaping(t *testing.T) {
	d := tenantDeployment()
	d.Spec.Template.Spec.Volumes[0] = corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "acme-credentials"}}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "acme-config"},
				Items: []corev1.KeyToPath{{Key: "level", Path: "sub/level.txt"}}}},
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
		}}}}
	l, err := Render(context.Background(), tenantObjects(), d, Pod{Namespace: "shop", Name: "acme-0", Dir: "/p"}, "/u")
	if err != nil {
		t.Fatal(err)
	}
	if f := l.Files[filepath.Join("volumes", "config", "admin-tokens")]; string(f.Data) != "tok1,tok2" || f.Mode != 0o600 {
		t.Errorf("secret file %+v", f)
	}
	if f := l.Files[filepath.Join("volumes", "config", "sub", "level.txt")]; string(f.Data) != "debug" {
		t.Errorf("item file %+v", f)
	}

	d.Spec.Template.Spec.Volumes[0].Projected.Sources[1].ConfigMap.Items[0].Path = "../../escape"
	if _, err := Render(context.Background(), tenantObjects(), d, Pod{Namespace: "shop", Name: "acme-0", Dir: "/p"}, "/u"); err == nil ||
		!strings.Contains(err.Error(), "leaves the volume") {
		t.Fatalf("escaping item path: err = %v", err)
	}
}

func TestRenderWithoutCommandUsesArgsAsEntrypointArgs(t *testing.T) {
	d := tenantDeployment()
	c := &d.Spec.Template.Spec.Containers[0]
	c.Command = nil
	c.Args = []string{"serve", "--listen=:8080", "--config=/etc/userve/userservice.yaml"}
	l, err := Render(context.Background(), tenantObjects(), d, Pod{Namespace: "shop", Name: "acme-0", Dir: "/p", Host: "127.0.0.1", Port: 9}, "/u")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/u", "serve", "--listen=127.0.0.1:9", "--config=/p/volumes/config/userservice.yaml", "--metrics-listen", ""}
	if !reflect.DeepEqual(l.Argv, want) {
		t.Fatalf("argv %q, want %q", l.Argv, want)
	}
}

func TestOverrideListen(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"u", "serve"}, []string{"u", "serve", "--listen", "a:1"}},
		{[]string{"u", "serve", "--listen", ":8080", "-x"}, []string{"u", "serve", "--listen", "a:1", "-x"}},
		{[]string{"u", "-listen=:80"}, []string{"u", "-listen=a:1"}},
		{[]string{"u", "serve", "--", "pos"}, []string{"u", "serve", "--listen", "a:1", "--", "pos"}},
	} {
		if got := overrideListen(tc.in, "a:1"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("overrideListen(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOverrideMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		port int
		want []string
	}{
		{[]string{"u", "serve", "--metrics-listen", ":9090"}, 7, []string{"u", "serve", "--metrics-listen", "h:7"}},
		{[]string{"u", "serve", "--metrics-listen=:9090", "-x"}, 7, []string{"u", "serve", "--metrics-listen=h:7", "-x"}},
		{[]string{"u", "serve"}, 7, []string{"u", "serve", "--metrics-listen", "h:7"}},
		// No port: off, never the template's shared :9090.
		{[]string{"u", "serve", "--metrics-listen", ":9090"}, 0, []string{"u", "serve", "--metrics-listen", ""}},
		// --listen is a different flag, left alone.
		{[]string{"u", "serve", "--listen", ":8080"}, 7, []string{"u", "serve", "--listen", ":8080", "--metrics-listen", "h:7"}},
	} {
		if got := overrideMetricsListen(tc.in, "h", tc.port); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("overrideMetricsListen(%q, %d) = %q, want %q", tc.in, tc.port, got, tc.want)
		}
	}
}

func TestRewritePaths(t *testing.T) {
	mounts := []mount{{"/etc/userve/extra", "/L/extra"}, {"/etc/userve", "/L/cfg"}}
	for in, want := range map[string]string{
		"/etc/userve":                  "/L/cfg",
		"/etc/userve/userservice.yaml": "/L/cfg/userservice.yaml",
		"--config=/etc/userve/a.yaml":  "--config=/L/cfg/a.yaml",
		"/etc/userve/extra/x":          "/L/extra/x",
		"/etc/userveX/a":               "/etc/userveX/a", // another path that shares a prefix
		"/opt/etc/userve":              "/opt/etc/userve",
		"a:/etc/userve,/etc/userve/b":  "a:/L/cfg,/L/cfg/b",
		"":                             "",
	} {
		if got := rewritePaths(in, mounts); got != want {
			t.Errorf("rewritePaths(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	look := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"$(A)-$(B)":  "1-two",
		"$$(A)":      "$(A)",
		"$(C)":       "$(C)",
		"$(A":        "$(A",
		"cost $5":    "cost $5",
		"trailing $": "trailing $",
	} {
		if got := expandVars(in, look); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResourceFieldRef(t *testing.T) {
	c := &corev1.Container{Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
	}}}
	for ref, want := range map[corev1.ResourceFieldSelector]string{
		{Resource: "limits.cpu"}:                                        "2",
		{Resource: "limits.memory"}:                                     "67108864",
		{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}: "64",
		{Resource: "requests.cpu"}:                                      "0",
	} {
		got, err := resourceValue(c, &ref)
		if err != nil || got != want {
			t.Errorf("%s/%s = %q, %v; want %q", ref.Resource, ref.Divisor.String(), got, err, want)
		}
	}
}

func TestTemplateHashFollowsContent(t *testing.T) {
	a, b := tenantDeployment(), tenantDeployment()
	if TemplateHash(&a.Spec.Template) != TemplateHash(&b.Spec.Template) {
		t.Fatal("equal templates hash differently")
	}
	b.Spec.Template.Annotations = map[string]string{"userve.dev/config-hash": "x"}
	if TemplateHash(&a.Spec.Template) == TemplateHash(&b.Spec.Template) {
		t.Fatal("changed template kept its hash")
	}
	b = tenantDeployment()
	b.Spec.Replicas = ptr.To[int32](7)
	if TemplateHash(&a.Spec.Template) != TemplateHash(&b.Spec.Template) {
		t.Fatal("replica count changed the template hash")
	}
}
