package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
)

// chartAppVersion is Chart.yaml's appVersion, the default image tag.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	_, app := chartVersions(t)
	return app
}

func chartVersion(t *testing.T) string {
	t.Helper()
	v, _ := chartVersions(t)
	return v
}

func chartVersions(t *testing.T) (version, appVersion string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		APIVersion string `json:"apiVersion"`
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.APIVersion != "v2" || chart.Version == "" || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml: want apiVersion v2, a version and an appVersion, got %+v", chart)
	}
	return chart.Version, chart.AppVersion
}

func TestHelmLint(t *testing.T) {
	helm(t, "lint", "--strict", chartDir(t))
	helm(t, "lint", "--strict", chartDir(t), "-f", repoPath(t, "test", "install", "testdata", "custom-values.yaml"))
	helm(t, "lint", "--strict", chartDir(t), "--set", "defaultMongo.existingSecret=shared-mongo,crds.enabled=false")
}

// The packaged chart carries the generated files its templates read.
func TestHelmPackage(t *testing.T) {
	dir := t.TempDir()
	helm(t, "package", chartDir(t), "--destination", dir)
	pkg := filepath.Join(dir, "userve-"+chartVersion(t)+".tgz")
	objs := decode(t, helm(t, "template", "userve", pkg, "--namespace", "userve-system"))
	if len(ofKind(objs, "CustomResourceDefinition")) == 0 || len(ofKind(objs, "ClusterRole")) == 0 {
		t.Errorf("the packaged chart renders no CRD or ClusterRole: %v", names(objs))
	}
}

func TestChartDefaults(t *testing.T) {
	objs := decode(t, render(t, "userve", "userve-system"))
	image := defaultImage + ":" + chartAppVersion(t)

	d := deployment(t, objs)
	if d.Namespace != "userve-system" || *d.Spec.Replicas != 1 {
		t.Errorf("deployment %s/%s replicas %d, want userve-system and 1", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != "Recreate" {
		t.Errorf("one replica without leader election must use Recreate, got %q", d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != image {
		t.Errorf("image %q, want %q (the chart's appVersion)", c.Image, image)
	}
	wantArgs := []string{
		"operator",
		"--server-image=" + image,
		"--max-concurrent-reconciles=32",
		"--log-level=info",
		"--metrics-bind-address=:8080",
		"--health-probe-bind-address=:8081",
	}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args\n got %q\nwant %q", c.Args, wantArgs)
	}
	assertRestricted(t, "operator pod", &pod)
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: want /healthz liveness and /readyz readiness, got %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if pod.ServiceAccountName != "userve" {
		t.Errorf("serviceAccountName %q, want userve", pod.ServiceAccountName)
	}
	if sa := one(t, objs, "ServiceAccount"); sa.GetName() != "userve" {
		t.Errorf("service account %q", sa.GetName())
	}

	// RBAC: one ClusterRole carrying exactly the generated rules, bound to
	// the service account; no namespaced Roles (no leader election, no
	// default MongoDB Secret).
	var operatorRole *rbacv1.ClusterRole
	for _, o := range ofKind(objs, "ClusterRole") {
		if o.GetName() == "userve-operator" {
			operatorRole = typed[rbacv1.ClusterRole](t, o)
		}
	}
	if operatorRole == nil {
		t.Fatalf("no ClusterRole userve-operator among %v", names(ofKind(objs, "ClusterRole")))
	}
	if want := generatedRules(t); !reflect.DeepEqual(operatorRole.Rules, want) {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml:\n got %+v\nwant %+v", operatorRole.Rules, want)
	}
	bindings := map[string]*rbacv1.ClusterRoleBinding{}
	for _, o := range ofKind(objs, "ClusterRoleBinding") {
		b := typed[rbacv1.ClusterRoleBinding](t, o)
		bindings[b.Name] = b
	}
	if len(bindings) != 2 {
		t.Errorf("ClusterRoleBindings %v, want the operator's and metrics-auth", keys(bindings))
	}
	for _, name := range []string{"userve-operator", "userve-metrics-auth"} {
		crb := bindings[name]
		if crb == nil || crb.RoleRef.Name != name || len(crb.Subjects) != 1 ||
			crb.Subjects[0].Name != "userve" || crb.Subjects[0].Namespace != "userve-system" {
			t.Errorf("ClusterRoleBinding %s: %+v", name, crb)
		}
	}
	assertMetricsRBAC(t, objs, "userve")
	if roles := ofKind(objs, "Role"); len(roles) != 0 {
		t.Errorf("default install wants no Roles, got %v", names(roles))
	}
	for _, kind := range []string{"ServiceMonitor", "Secret"} {
		if found := ofKind(objs, kind); len(found) != 0 {
			t.Errorf("default install renders %s %v", kind, names(found))
		}
	}

	svc := typed[corev1.Service](t, one(t, objs, "Service"))
	if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 8080 ||
		svc.Spec.Ports[1].Name != "health" || svc.Spec.Ports[1].Port != 8081 {
		t.Errorf("service ports %+v, want metrics 8080 and health 8081", svc.Spec.Ports)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("service selector %v does not match the deployment's %v", svc.Spec.Selector, d.Spec.Selector.MatchLabels)
	}

	// The CRD: rendered, kept on uninstall, and identical to the generated one.
	assertCRDsMatchGenerated(t, objs, true)

	// helm test: a restricted pod fetching /healthz on the probe port.
	var testPod *corev1.Pod
	for _, o := range ofKind(objs, "Pod") {
		if o.GetAnnotations()["helm.sh/hook"] == "test" {
			testPod = typed[corev1.Pod](t, o)
		}
	}
	if testPod == nil {
		t.Fatal("no helm test hook Pod")
	}
	assertRestricted(t, "helm test pod", &testPod.Spec)
	if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(testPod.Labels)) {
		t.Errorf("the Service selects the test pod: %v", testPod.Labels)
	}
	if cmd := strings.Join(testPod.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "http://userve.userve-system.svc:8081/healthz") {
		t.Errorf("test pod command %q does not fetch the operator's /healthz", cmd)
	}
}

func TestChartCustomValues(t *testing.T) {
	objs := decode(t, render(t, "platform", "platform-system",
		"-f", repoPath(t, "test", "install", "testdata", "custom-values.yaml")))

	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 2 || !hasArg(c.Args, "--leader-elect") {
		t.Errorf("replicas %d args %q: two replicas need --leader-elect", *d.Spec.Replicas, c.Args)
	}
	if d.Spec.Strategy.Type == "Recreate" {
		t.Error("with leader election the deployment may roll")
	}
	if c.Image != "registry.example.com/platform/userve:v0.2.0-rc.1" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q policy %q", c.Image, c.ImagePullPolicy)
	}
	for _, want := range []string{
		"--server-image=registry.example.com/platform/userve-server:v0.2.0",
		"--watch-namespaces=team-a,team-b",
		"--max-concurrent-reconciles=8",
		"--log-level=debug",
		"--shared-database-credentials",
		"--default-mongo-uri-secret=platform-system/platform-userve-mongo/uri",
	} {
		if !hasArg(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	pod := d.Spec.Template.Spec
	if pod.PriorityClassName != "userve-platform-critical" || pod.NodeSelector["kubernetes.io/os"] != "linux" ||
		len(pod.Tolerations) != 1 || pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil ||
		len(pod.TopologySpreadConstraints) != 1 || len(pod.ImagePullSecrets) != 1 {
		t.Errorf("scheduling settings not all rendered: %+v", pod)
	}
	if c.Resources.Limits.Memory().String() != "512Mi" || c.Resources.Requests.Cpu().String() != "100m" {
		t.Errorf("resources %+v", c.Resources)
	}
	if d.Spec.Template.Labels["example.com/cost-center"] != "42" || d.Spec.Template.Annotations["example.com/team"] != "platform" {
		t.Errorf("pod labels %v annotations %v", d.Spec.Template.Labels, d.Spec.Template.Annotations)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" && e.Value == "200MiB" }) {
		t.Errorf("env %+v lacks GOMEMLIMIT", c.Env)
	}
	assertRestricted(t, "operator pod", &pod)

	// watchNamespaces: a Role and RoleBinding per namespace instead of the
	// operator ClusterRole; plus leader election and the default Secret.
	for _, o := range ofKind(objs, "ClusterRole") {
		if o.GetName() == "platform-userve-operator" {
			t.Error("watchNamespaces set, yet the operator ClusterRole is rendered")
		}
	}
	// Only what is cluster-scoped is granted cluster-wide: the metrics
	// authentication (TokenReviews and SubjectAccessReviews) and pools
	// (UserServicePools, namespaces' labels).
	if crbs := names(ofKind(objs, "ClusterRoleBinding")); !slices.Equal(crbs, []string{"/platform-userve-operator-pools", "/platform-userve-metrics-auth"}) {
		t.Errorf("watchNamespaces set: ClusterRoleBindings %v, want only operator-pools and metrics-auth", crbs)
	}
	for _, o := range ofKind(objs, "ClusterRole") {
		if o.GetName() != "platform-userve-operator-pools" {
			continue
		}
		for _, r := range typed[rbacv1.ClusterRole](t, o).Rules {
			if slices.ContainsFunc(r.Resources, func(res string) bool { return res == "secrets" || res == "userservices" }) {
				t.Errorf("the cluster-wide pools role grants %v", r.Resources)
			}
		}
	}
	assertMetricsRBAC(t, objs, "platform-userve")
	rules := generatedRules(t)
	roles := map[string]*rbacv1.Role{}
	for _, o := range ofKind(objs, "Role") {
		r := typed[rbacv1.Role](t, o)
		roles[r.Namespace+"/"+r.Name] = r
	}
	// The release namespace too: pools run there by default.
	for _, ns := range []string{"team-a", "team-b", "platform-system"} {
		r := roles[ns+"/platform-userve-operator"]
		if r == nil {
			t.Errorf("no operator Role in %s; roles: %v", ns, keys(roles))
			continue
		}
		if !reflect.DeepEqual(r.Rules, rules) {
			t.Errorf("Role %s/%s rules differ from config/rbac/role.yaml", r.Namespace, r.Name)
		}
	}
	bindings := map[string]*rbacv1.RoleBinding{}
	for _, o := range ofKind(objs, "RoleBinding") {
		b := typed[rbacv1.RoleBinding](t, o)
		bindings[b.Namespace+"/"+b.Name] = b
		if b.Subjects[0].Name != "platform-userve" || b.Subjects[0].Namespace != "platform-system" {
			t.Errorf("RoleBinding %s/%s binds %+v", b.Namespace, b.Name, b.Subjects)
		}
	}
	for _, want := range []string{"team-a/platform-userve-operator", "team-b/platform-userve-operator",
		"platform-system/platform-userve-leader-election", "platform-system/platform-userve-default-mongo"} {
		if bindings[want] == nil {
			t.Errorf("no RoleBinding %s among %v", want, keys(bindings))
		}
	}
	if le := roles["platform-system/platform-userve-leader-election"]; le == nil || le.Rules[0].Resources[0] != "leases" {
		t.Errorf("leader election Role missing or wrong: %+v", le)
	}
	if dm := roles["platform-system/platform-userve-default-mongo"]; dm == nil ||
		!slices.Equal(dm.Rules[0].ResourceNames, []string{"platform-userve-mongo"}) || !slices.Equal(dm.Rules[0].Verbs, []string{"get", "patch"}) {
		t.Errorf("default Mongo Role must get and label only that Secret: %+v", dm)
	}

	secret := typed[corev1.Secret](t, one(t, objs, "Secret"))
	if secret.Name != "platform-userve-mongo" || secret.StringData["uri"] != "mongodb://userve:secret@mongo.databases.svc:27017/?authSource=admin" {
		t.Errorf("default Mongo Secret %s: %v", secret.Name, secret.StringData)
	}

	sm := one(t, objs, "ServiceMonitor")
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %s labels %v", sm.GetAPIVersion(), sm.GetLabels())
	}
	// The operator's metrics are HTTPS and need a token: Prometheus brings
	// its ServiceAccount's.
	if ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints"); len(ep) != 1 || ep[0].(map[string]any)["port"] != "metrics" ||
		ep[0].(map[string]any)["scheme"] != "https" ||
		ep[0].(map[string]any)["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" ||
		!reflect.DeepEqual(ep[0].(map[string]any)["tlsConfig"], map[string]any{"insecureSkipVerify": true}) {
		t.Errorf("ServiceMonitor endpoints %v", ep)
	}

	// crds.keep=false: the CRD goes with the release.
	assertCRDsMatchGenerated(t, objs, false)
}

func TestChartExistingMongoSecretWithoutCRDs(t *testing.T) {
	objs := decode(t, render(t, "userve", "ops", "--set", "defaultMongo.existingSecret=shared-mongo,defaultMongo.secretKey=url,crds.enabled=false,rbac.aggregateToDefaultRoles=false"))
	if found := ofKind(objs, "CustomResourceDefinition"); len(found) != 0 {
		t.Errorf("crds.enabled=false renders %v", names(found))
	}
	if found := ofKind(objs, "Secret"); len(found) != 0 {
		t.Errorf("an existing Secret must not be rendered: %v", names(found))
	}
	c := deployment(t, objs).Spec.Template.Spec.Containers[0]
	if !hasArg(c.Args, "--default-mongo-uri-secret=ops/shared-mongo/url") {
		t.Errorf("args %q lack the existing Secret", c.Args)
	}
	if got := names(ofKind(objs, "ClusterRole")); !slices.Equal(got, []string{"/userve-operator", "/userve-metrics-auth", "/userve-metrics-reader"}) {
		t.Errorf("cluster roles %v, want only the operator's and the metrics ones", got)
	}
}

// assertMetricsRBAC: the operator may create TokenReviews and
// SubjectAccessReviews (to judge scrapes), and the metrics-reader
// ClusterRole grants GET /metrics, the same rules as config/rbac.
func assertMetricsRBAC(t *testing.T, objs []*unstructured.Unstructured, fullname string) {
	t.Helper()
	roles := map[string]*rbacv1.ClusterRole{}
	for _, o := range ofKind(objs, "ClusterRole") {
		r := typed[rbacv1.ClusterRole](t, o)
		roles[r.Name] = r
	}
	for suffix, file := range map[string]string{"metrics-auth": "metrics_auth_role.yaml", "metrics-reader": "metrics_reader_role.yaml"} {
		got := roles[fullname+"-"+suffix]
		want := configClusterRole(t, file)
		if got == nil || !reflect.DeepEqual(got.Rules, want.Rules) {
			t.Errorf("ClusterRole %s-%s: %+v, want the rules of config/rbac/%s %+v", fullname, suffix, got, file, want.Rules)
		}
	}
}

func configClusterRole(t *testing.T, file string) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	return typed[rbacv1.ClusterRole](t, one(t, decode(t, data), "ClusterRole"))
}

// The metrics values: plain HTTP (no auth roles, an http ServiceMonitor), a
// certificate Secret, and readers bound to metrics-reader.
func TestChartMetricsValues(t *testing.T) {
	objs := decode(t, render(t, "userve", "userve-system", "--set", "metrics.secure=false,metrics.serviceMonitor.enabled=true"))
	c := deployment(t, objs).Spec.Template.Spec.Containers[0]
	if !hasArg(c.Args, "--metrics-secure=false") {
		t.Errorf("metrics.secure=false: args %q", c.Args)
	}
	for _, o := range append(ofKind(objs, "ClusterRole"), ofKind(objs, "ClusterRoleBinding")...) {
		if strings.Contains(o.GetName(), "metrics") {
			t.Errorf("metrics.secure=false renders %s %s", o.GetKind(), o.GetName())
		}
	}
	ep, _, _ := unstructured.NestedSlice(one(t, objs, "ServiceMonitor").Object, "spec", "endpoints")
	if e := ep[0].(map[string]any); e["scheme"] != "http" || e["bearerTokenFile"] != nil || e["tlsConfig"] != nil {
		t.Errorf("metrics.secure=false: ServiceMonitor endpoint %v", e)
	}

	objs = decode(t, render(t, "userve", "userve-system", "-f", repoPath(t, "test", "install", "testdata", "metrics-values.yaml")))
	d := deployment(t, objs)
	c = d.Spec.Template.Spec.Containers[0]
	if !hasArg(c.Args, "--metrics-cert-dir=/etc/userve/metrics-certs") || hasArg(c.Args, "--metrics-secure=false") {
		t.Errorf("metrics.certSecret: args %q", c.Args)
	}
	vols := d.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "userve-metrics-tls" ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/userve/metrics-certs" || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("metrics.certSecret: volumes %+v mounts %+v", vols, c.VolumeMounts)
	}
	assertRestricted(t, "operator pod with a metrics certificate", &d.Spec.Template.Spec)
	var reader *rbacv1.ClusterRoleBinding
	for _, o := range ofKind(objs, "ClusterRoleBinding") {
		if o.GetName() == "userve-metrics-reader" {
			reader = typed[rbacv1.ClusterRoleBinding](t, o)
		}
	}
	if reader == nil || reader.RoleRef.Name != "userve-metrics-reader" || len(reader.Subjects) != 1 ||
		reader.Subjects[0].Kind != "ServiceAccount" || reader.Subjects[0].Name != "prometheus-k8s" || reader.Subjects[0].Namespace != "monitoring" {
		t.Errorf("metrics.readers: binding %+v", reader)
	}
	ep, _, _ = unstructured.NestedSlice(one(t, objs, "ServiceMonitor").Object, "spec", "endpoints")
	if tls := ep[0].(map[string]any)["tlsConfig"]; !reflect.DeepEqual(tls, map[string]any{"serverName": "userve.userve-system.svc",
		"ca": map[string]any{"secret": map[string]any{"name": "userve-metrics-tls", "key": "ca.crt"}}}) {
		t.Errorf("serviceMonitor.tlsConfig: %v", tls)
	}
	helm(t, "lint", "--strict", chartDir(t), "-f", repoPath(t, "test", "install", "testdata", "metrics-values.yaml"))
}

// Wrong values fail `helm template` and `helm lint` with a message naming them.
func TestChartRefusesBadValues(t *testing.T) {
	cases := map[string][]string{
		"replica-count-string.yaml":    {"replicaCount", "integer"},
		"unknown-key.yaml":             {"replicas"},
		"watch-namespace-invalid.yaml": {"watchNamespaces", "Team_A"},
		"mongo-both.yaml":              {"/defaultMongo/uri"},
		"mongo-uri-scheme.yaml":        {"defaultMongo", "uri"},
		"metrics-port.yaml":            {"metrics", "port"},
		"pull-policy.yaml":             {"/image/pullPolicy", "IfNotPresent"},
		"leader-election-off.yaml":     {"/leaderElection/enabled"},
		"metrics-secure-string.yaml":   {"/metrics/secure", "boolean"},
		"metrics-reader-kind.yaml":     {"/metrics/readers/0/kind", "ServiceAccount"},
	}
	for file, wants := range cases {
		t.Run(file, func(t *testing.T) {
			values := repoPath(t, "test", "install", "testdata", "bad-values", file)
			for _, cmd := range [][]string{
				{"template", "userve", chartDir(t), "-f", values},
				{"lint", chartDir(t), "-f", values},
			} {
				_, err := run(t, "helm", nil, cmd...)
				if err == nil {
					t.Fatalf("helm %s accepted %s", cmd[0], file)
				}
				for _, want := range wants {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("helm %s: message does not name %q:\n%v", cmd[0], want, err)
					}
				}
			}
		})
	}
	// The templates guard the same rule when the schema is skipped.
	_, err := run(t, "helm", nil, "template", "userve", chartDir(t), "--skip-schema-validation",
		"-f", repoPath(t, "test", "install", "testdata", "bad-values", "leader-election-off.yaml"))
	if err == nil || !strings.Contains(err.Error(), "several active operators") {
		t.Errorf("two replicas without leader election rendered without the schema: %v", err)
	}
}

// The chart's copies of the generated CRDs and RBAC rules are current.
func TestChartCopiesAreInSync(t *testing.T) {
	cmd := exec.Command("bash", repoPath(t, "hack", "sync-chart-crds.sh"), "--check")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the chart is out of date with config/ (run `make manifests`): %v\n%s", err, out)
	}
}

// generatedRules are the rules controller-gen wrote into config/rbac/role.yaml.
func generatedRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatalf("%v: run `make manifests`", err)
	}
	objs := decode(t, data)
	if len(objs) != 1 || objs[0].GetKind() != "ClusterRole" {
		t.Fatalf("config/rbac/role.yaml: want one ClusterRole, got %v", names(objs))
	}
	rules := typed[rbacv1.ClusterRole](t, objs[0]).Rules
	if len(rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return rules
}

// assertCRDsMatchGenerated checks that the chart renders every CRD of
// config/crd/bases unchanged but for the chart's labels and, with keep, the
// resource-policy annotation.
func assertCRDsMatchGenerated(t *testing.T, objs []*unstructured.Unstructured, keep bool) {
	t.Helper()
	rendered := map[string]*unstructured.Unstructured{}
	for _, o := range ofKind(objs, "CustomResourceDefinition") {
		rendered[o.GetName()] = o
	}
	files, err := filepath.Glob(repoPath(t, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	if len(rendered) != len(files) {
		t.Errorf("chart renders %d CRDs, config/crd/bases has %d", len(rendered), len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := one(t, decode(t, data), "CustomResourceDefinition")
		got := rendered[want.GetName()]
		if got == nil {
			t.Errorf("chart does not render CRD %s", want.GetName())
			continue
		}
		got = got.DeepCopy()
		annotations := got.GetAnnotations()
		if keep != (annotations["helm.sh/resource-policy"] == "keep") {
			t.Errorf("CRD %s: crds.keep=%v but annotations are %v", got.GetName(), keep, annotations)
		}
		delete(annotations, "helm.sh/resource-policy")
		got.SetAnnotations(nilIfEmpty(annotations))
		labels := got.GetLabels()
		if labels["app.kubernetes.io/part-of"] != "userve" {
			t.Errorf("CRD %s lacks the chart's labels: %v", got.GetName(), labels)
		}
		for _, k := range []string{"app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			delete(labels, k)
		}
		got.SetLabels(nilIfEmpty(labels))
		if !reflect.DeepEqual(got.Object, want.Object) {
			t.Errorf("CRD %s rendered by the chart differs from %s: run `make manifests`", got.GetName(), f)
		}
	}
}

// assertRestricted checks the restricted Pod Security Standard's settings.
func assertRestricted(t *testing.T, what string, pod *corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", what, psc)
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: container %s securityContext %+v is not restricted", what, c.Name, sc)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: container %s has no memory limit", what, c.Name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// nilIfEmpty lets an emptied map vanish, as an absent one is in the source.
func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// TestChartPools: each entry of pools is a UserServicePool with the entry's
// spec, in operator.poolNamespace unless it names one (never the release
// namespace: without either, the chart refuses); none before the CRD exists
// (the install that creates it).
func TestChartPools(t *testing.T) {
	values := []string{"--set", "operator.poolNamespace=userve-pools", "--set", "pools[0].name=shared", "--set", "pools[0].replicas=3", "--set", "pools[0].namespaceSelector.matchLabels.team=a",
		"--set", "pools[1].name=edge", "--set", "pools[1].namespace=edge-pools", "--set", "pools[1].egress.allowCIDRs={10.0.3.7/32}"}
	objs := decode(t, render(t, "userve", "userve-system", append(values, "--api-versions", "miniapp.userve.dev/v1alpha1/UserServicePool")...))
	pools := ofKind(objs, "UserServicePool")
	if len(pools) != 2 {
		t.Fatalf("pools %v, want shared and edge", names(pools))
	}
	shared, edge := typed[v1alpha1.UserServicePool](t, pools[0]), typed[v1alpha1.UserServicePool](t, pools[1])
	if shared.Name != "shared" || shared.Spec.Namespace != "userve-pools" || *shared.Spec.Replicas != 3 || shared.Spec.NamespaceSelector.MatchLabels["team"] != "a" {
		t.Errorf("shared: %s %+v", shared.Name, shared.Spec)
	}
	if edge.Name != "edge" || edge.Spec.Namespace != "edge-pools" || !slices.Equal(edge.Spec.Egress.AllowCIDRs, []string{"10.0.3.7/32"}) {
		t.Errorf("edge: %s %+v", edge.Name, edge.Spec)
	}
	if n := len(ofKind(decode(t, render(t, "userve", "userve-system", values...)), "UserServicePool")); n != 0 {
		t.Errorf("%d pools rendered without their CRD in the cluster", n)
	}
	if _, err := run(t, "helm", nil, "template", "userve", chartDir(t), "--set", "pools[0].replicas=2"); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("a pool without a name: %v", err)
	}
	_, err := run(t, "helm", nil, "template", "userve", chartDir(t), "--namespace", "userve-system", "--set", "pools[0].name=shared",
		"--api-versions", "miniapp.userve.dev/v1alpha1/UserServicePool")
	if err == nil || !strings.Contains(err.Error(), "needs a namespace of its own") {
		t.Errorf("a pool without a namespace, and no operator.poolNamespace: %v", err)
	}
	args := decode(t, render(t, "userve", "userve-system", values...))
	if d := ofKind(args, "Deployment"); len(d) != 1 || !strings.Contains(fmt.Sprint(d[0].Object), "--pool-namespace=userve-pools") {
		t.Errorf("the operator is not given --pool-namespace")
	}
}
