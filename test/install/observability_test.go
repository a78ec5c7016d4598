package install

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
	tenantrender "userve.dev/userve/controllers/render"
)

// prometheusOperatorModule pins the Prometheus Operator whose CRDs the chart's
// monitors and rules are checked against: hack/tools/prometheus-operator's
// go.mod and go.sum name the version and its checksum, and the files come
// from the Go module cache, never from a download of their own.
const prometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator"

var promCRDs sync.Once

// installPrometheusOperatorCRDs applies the real ServiceMonitor, PodMonitor
// and PrometheusRule CRDs (example/prometheus-operator-crd of the module).
func installPrometheusOperatorCRDs(t *testing.T) {
	t.Helper()
	promCRDs.Do(func() {
		cmd := exec.Command("go", "mod", "download", "-json", prometheusOperatorModule)
		cmd.Dir = repoPath(t, "hack", "tools", "prometheus-operator")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go mod download %s: %v\n%s", prometheusOperatorModule, err, stderr.String())
		}
		var mod struct{ Dir, Version, Error string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			t.Fatalf("go mod download %s: %v %s %s", prometheusOperatorModule, err, mod.Error, out)
		}
		t.Logf("Prometheus Operator CRDs of %s %s", prometheusOperatorModule, mod.Version)
		for _, kind := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
			crd := mustRead(t, filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml"))
			applyServerSide(t, crd, "--force-conflicts")
			kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+kind+".monitoring.coreos.com")
		}
	})
}

// allObservability switches on every observability object of the chart.
var allObservability = []string{
	"--set", "metrics.serviceMonitor.enabled=true",
	"--set", "metrics.podMonitor.enabled=true",
	"--set", "metrics.prometheusRule.enabled=true",
	"--set", "metrics.dashboards.enabled=true",
	"--set-string", "metrics.podMonitor.labels.release=prometheus",
	"--set-string", "metrics.prometheusRule.labels.role=alert-rules",
	"--set-string", "metrics.dashboards.annotations.grafana_folder=userve",
}

// Done check of issue 16: the chart with everything switched on is accepted
// by a real kube-apiserver holding the Prometheus Operator's own CRDs, and
// what it stores is what the chart means.
func TestChartObservabilityApply(t *testing.T) {
	installPrometheusOperatorCRDs(t)
	createNamespace(t, "observed-system")
	manifests := render(t, "obs", "observed-system", allObservability...)
	applyServerSide(t, manifests)
	objs := decode(t, manifests)
	for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		one(t, objs, kind)
	}
	assertStored(t, objs)

	// The stored objects, read back through the real schemas.
	get := func(kind, name string) *unstructured.Unstructured {
		t.Helper()
		out := kubectl(t, nil, "get", kind, name, "-n", "observed-system", "-o", "json")
		var o unstructured.Unstructured
		if err := o.UnmarshalJSON(out); err != nil {
			t.Fatal(err)
		}
		return &o
	}

	pm := get("podmonitors.monitoring.coreos.com", "obs-userve-tenants")
	if pm.GetLabels()["release"] != "prometheus" {
		t.Errorf("PodMonitor labels %v lack release=prometheus", pm.GetLabels())
	}
	if any, _, _ := unstructured.NestedBool(pm.Object, "spec", "namespaceSelector", "any"); !any {
		t.Errorf("PodMonitor does not select every namespace: %v", pm.Object["spec"])
	}
	// The selector picks exactly the tenant pods the operator renders, on
	// the port serving /metrics, and never the operator's own pods.
	selector, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	us := &v1alpha1.UserService{}
	us.Name, us.Namespace = "acme", "team-a"
	v1alpha1.SetDefaults(us)
	tenantPod := tenantrender.Deployment(us, tenantrender.DeploymentParams{Image: "example.com/userve:test"}).Spec.Template
	if !labels.SelectorFromSet(selector).Matches(labels.Set(tenantPod.Labels)) {
		t.Errorf("PodMonitor selector %v does not match a tenant pod's labels %v", selector, tenantPod.Labels)
	}
	operatorPod := deployment(t, objs).Spec.Template
	if labels.SelectorFromSet(selector).Matches(labels.Set(operatorPod.Labels)) {
		t.Errorf("PodMonitor selector %v matches the operator's pods", selector)
	}
	endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(endpoints) != 1 {
		t.Fatalf("PodMonitor endpoints %v", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	if !hasContainerPort(tenantPod.Spec, ep["port"]) || ep["path"] != "/metrics" {
		t.Errorf("PodMonitor scrapes port %v path %v; the tenant container's ports are %+v", ep["port"], ep["path"], tenantPod.Spec.Containers[0].Ports)
	}
	relabel, _ := ep["relabelings"].([]any)
	if len(relabel) != 1 || !reflect.DeepEqual(relabel[0].(map[string]any)["sourceLabels"], []any{"__meta_kubernetes_pod_label_app_kubernetes_io_instance"}) ||
		relabel[0].(map[string]any)["targetLabel"] != "tenant" {
		t.Errorf("PodMonitor relabelings %v: want the pod's instance label as tenant", relabel)
	}
	if tenantPod.Labels[tenantrender.LabelInstance] != us.Name {
		t.Errorf("the tenant label would not be the UserService's name: %v", tenantPod.Labels)
	}

	sm := get("servicemonitors.monitoring.coreos.com", "obs-userve")
	smEndpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(smEndpoints) != 1 || smEndpoints[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoints %v: want honorLabels (userve_tenant_ready's namespace)", smEndpoints)
	}

	// The PrometheusRule holds the rule file's groups unchanged.
	pr := get("prometheusrules.monitoring.coreos.com", "obs-userve")
	if pr.GetLabels()["role"] != "alert-rules" {
		t.Errorf("PrometheusRule labels %v", pr.GetLabels())
	}
	stored, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	var file struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.Unmarshal(mustRead(t, repoPath(t, "charts", "userve", "files", "alerts", "userve.rules.yaml")), &file); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(t, stored), normalize(t, file.Groups)) {
		t.Errorf("the stored PrometheusRule differs from files/alerts/userve.rules.yaml:\n%v\n%v", stored, file.Groups)
	}

	// One sidecar ConfigMap per dashboard, holding the committed JSON.
	files, _ := filepath.Glob(repoPath(t, "charts", "userve", "files", "dashboards", "*.json"))
	if len(files) != 3 { // operator, tenants, pools
		t.Fatalf("dashboards %v", files)
	}
	for _, f := range files {
		name := "obs-userve-dashboard-" + strings.TrimSuffix(filepath.Base(f), ".json")
		var cm corev1.ConfigMap
		if err := json.Unmarshal(kubectl(t, nil, "get", "configmap", name, "-n", "observed-system", "-o", "json"), &cm); err != nil {
			t.Fatal(err)
		}
		if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "userve" {
			t.Errorf("ConfigMap %s labels %v annotations %v", name, cm.Labels, cm.Annotations)
		}
		want, _ := os.ReadFile(f)
		if got := cm.Data[filepath.Base(f)]; got != strings.TrimSuffix(string(want), "\n") || !json.Valid([]byte(got)) {
			t.Errorf("ConfigMap %s does not hold %s", name, filepath.Base(f))
		}
	}
}

// With operator.watchNamespaces the PodMonitor looks only there; the
// dashboards can go to Grafana's namespace; all four are off by default.
func TestChartObservabilityValues(t *testing.T) {
	helm(t, append([]string{"lint", "--strict", chartDir(t)}, allObservability...)...)
	// A typo'd switch fails like every other value.
	if _, err := run(t, "helm", nil, "template", "userve", chartDir(t), "--set", "metrics.podmonitor.enabled=true"); err == nil ||
		!strings.Contains(err.Error(), "podmonitor") {
		t.Errorf("metrics.podmonitor (lower-case m) was accepted: %v", err)
	}
	objs := decode(t, render(t, "userve", "userve-system", append(allObservability,
		"--set", "operator.watchNamespaces={team-a,team-b}", "--set", "metrics.dashboards.namespace=grafana")...))
	pm := one(t, objs, "PodMonitor")
	watched, _, _ := unstructured.NestedStringSlice(pm.Object, "spec", "namespaceSelector", "matchNames")
	if !reflect.DeepEqual(watched, []string{"team-a", "team-b"}) {
		t.Errorf("PodMonitor namespaces %v, want the watched ones", watched)
	}
	if _, any := pm.Object["spec"].(map[string]any)["namespaceSelector"].(map[string]any)["any"]; any {
		t.Error("PodMonitor selects any namespace although the operator watches two")
	}
	dashboards := 0
	for _, cm := range ofKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] == "1" {
			dashboards++
			if cm.GetNamespace() != "grafana" {
				t.Errorf("dashboard %s in %q, want grafana", cm.GetName(), cm.GetNamespace())
			}
		}
	}
	if dashboards != 3 {
		t.Errorf("%d dashboard ConfigMaps, want 3 (operator, tenants, pools)", dashboards)
	}

	defaults := decode(t, render(t, "userve", "userve-system"))
	for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"} {
		if found := ofKind(defaults, kind); len(found) != 0 {
			t.Errorf("the default install renders %s %v", kind, names(found))
		}
	}
}

func hasContainerPort(pod corev1.PodSpec, name any) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// normalize round-trips through JSON so that YAML and API values compare.
func normalize(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
