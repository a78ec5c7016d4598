package install

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/kubefixture"
)

// assertStored checks that every object exists on the API server.
func assertStored(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := env.Client.RESTMapper()
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, o.GetName(), err)
			continue
		}
		var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			r = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := r.Get(context.Background(), o.GetName(), metav1.GetOptions{}); err != nil {
			t.Errorf("%s %s/%s not stored: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// assertPodAdmitted creates, as a server-side dry run, a Pod from a pod
// template in a namespace enforcing the restricted Pod Security Standard:
// the real admission chain decides whether it could run.
func assertPodAdmitted(t *testing.T, namespace string, tmpl corev1.PodTemplateSpec) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.GenerateName = "dry-run-"
	pod.Namespace = namespace
	if err := env.Client.Create(context.Background(), pod, client.DryRunAll); err != nil {
		t.Errorf("a pod of this template is refused in a restricted namespace: %v", err)
	}
}

// The admission check above means something: PodSecurity is on in envtest.
func TestRestrictedNamespaceRefusesPrivilegedPod(t *testing.T) {
	createNamespace(t, "psa-check")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "root-", Namespace: "psa-check"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	err := env.Client.Create(context.Background(), pod, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "restricted") {
		t.Fatalf("a pod without a security context was not refused as violating restricted: %v", err)
	}
}

func TestChartDefaultsApply(t *testing.T) {
	createNamespace(t, "chart-default")
	manifests := render(t, "ut-default", "chart-default")
	applyServerSide(t, manifests)
	objs := decode(t, manifests)
	assertStored(t, objs)

	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: "chart-default", Name: "ut-default-userve"}, d); err != nil {
		t.Fatal(err)
	}
	assertPodAdmitted(t, "chart-default", d.Spec.Template)
}

func TestChartCustomValuesApply(t *testing.T) {
	for _, ns := range []string{"platform-system", "team-a", "team-b"} {
		createNamespace(t, ns)
	}
	// The ServiceMonitor needs its CRD (the Prometheus Operator's own), and
	// the pods their PriorityClass.
	installPrometheusOperatorCRDs(t)
	applyServerSide(t, []byte("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: userve-platform-critical\nvalue: 100000\n"))

	manifests := render(t, "platform", "platform-system", "-f", repoPath(t, "test", "install", "testdata", "custom-values.yaml"))
	applyServerSide(t, manifests)
	objs := decode(t, manifests)
	if len(ofKind(objs, "ServiceMonitor")) != 1 || len(ofKind(objs, "Role")) < 4 {
		t.Fatalf("the custom render lacks the objects under test: %v", names(objs))
	}
	assertStored(t, objs)

	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: "platform-system", Name: "platform-userve"}, d); err != nil {
		t.Fatal(err)
	}
	assertPodAdmitted(t, "platform-system", d.Spec.Template)
}

// A real Helm release: install (creating the CRD), upgrade to two replicas,
// uninstall; the CRD and the tenants outlive the release.
func TestHelmReleaseKeepsCRD(t *testing.T) {
	ctx := context.Background()
	// The fixture installed the CRDs without Helm: this test gets a fresh
	// cluster of its own (deleting the CRDs instead took the API server over
	// 180 s on loaded cores). helm, kubectl and env speak to it until the
	// test ends; the package's tests run one at a time.
	fresh, err := kubefixture.Start(kubefixture.WithoutCRDs())
	if err != nil {
		t.Fatal(err)
	}
	shared := env
	env = fresh
	t.Cleanup(func() {
		env = shared
		_ = fresh.Stop()
	})

	// A pool in values cannot be created with the CRD that defines it: the
	// first install says so, the upgrade creates it.
	pools := []string{"--set", "pools[0].name=shared", "--set", "pools[0].maxTenants=5", "--set", "operator.poolNamespace=life-pools"}
	notes := string(helm(t, append([]string{"install", "life", chartDir(t), "--namespace", "life", "--create-namespace"}, pools...)...))
	for _, want := range []string{"Create a first tenant", "kind: UserService", "uriSecretRef", "helm test life -n life", "were NOT created"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
	kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd/"+crdName)

	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, crd); err != nil {
		t.Fatal(err)
	}
	if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" || crd.GetAnnotations()["meta.helm.sh/release-name"] != "life" {
		t.Errorf("installed CRD annotations %v", crd.GetAnnotations())
	}

	// A tenant, so that the uninstall below must leave it alone.
	applyServerSide(t, mustRead(t, repoPath(t, "config", "samples", "miniapp_v1alpha1_userservice_minimal.yaml")), "--namespace", "life")

	// Upgrade to two replicas, narrowed to one namespace, with a default
	// MongoDB Secret: RBAC switches from the ClusterRole to a Role.
	notes = string(helm(t, "upgrade", "life", chartDir(t), "--namespace", "life", "--set", "replicaCount=2",
		"--set", "operator.watchNamespaces={life}", "--set", "defaultMongo.uri=mongodb://mongo.example:27017", pools[0], pools[1], pools[2], pools[3], pools[4], pools[5]))
	pool := &v1alpha1.UserServicePool{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "shared"}, pool); err != nil {
		t.Errorf("the upgrade did not create the pool from values: %v", err)
	} else if pool.Spec.Namespace != "life-pools" || pool.Spec.MaxTenants != 5 {
		t.Errorf("pool from values: %+v", pool.Spec)
	}
	if strings.Contains(notes, "were NOT created") {
		t.Errorf("NOTES after the upgrade still say the pools were not created:\n%s", notes)
	}
	for _, want := range []string{"It reconciles UserServices in: life.", "kubectl -n life wait usvc/acme --for=condition=Ready",
		"Secret life/life-userve-mongo"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES after upgrade lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "kubectl create namespace acme") {
		t.Errorf("NOTES tell to create a namespace the operator does not watch:\n%s", notes)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "life-userve-operator"}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
		t.Errorf("after narrowing to one namespace the operator ClusterRole remains: %v", err)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "life", Name: "life-userve-operator"}, &rbacv1.Role{}); err != nil {
		t.Errorf("after narrowing to one namespace, no operator Role in it: %v", err)
	}
	d := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "life", Name: "life-userve"}, d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || !hasArg(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
		t.Errorf("after upgrade: replicas %d args %q", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "life", Name: "life-userve-leader-election"}, &rbacv1.Role{}); err != nil {
		t.Errorf("after upgrade, no leader election Role: %v", err)
	}

	helm(t, "uninstall", "life", "--namespace", "life", "--wait", "--timeout", "60s")
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "life", Name: "life-userve"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("the operator Deployment outlived the release: %v", err)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "life", Name: "life-userve-operator"}, &rbacv1.Role{}); !apierrors.IsNotFound(err) {
		t.Errorf("the operator Role outlived the release: %v", err)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, crd); err != nil {
		t.Fatalf("helm uninstall removed the CRD despite crds.keep: %v", err)
	}
	// Pools are kept too (their tenants would otherwise lose them); this
	// one has no tenant and goes.
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "shared"}, pool); err != nil {
		t.Errorf("helm uninstall removed the pool: %v", err)
	} else if err := env.Client.Delete(ctx, pool); err != nil {
		t.Fatal(err)
	}
	us := &v1alpha1.UserService{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "life", Name: "minimal"}, us); err != nil {
		t.Errorf("the tenant did not survive the uninstall: %v", err)
	}

	// The same release installed again adopts the kept CRD.
	helm(t, "install", "life", chartDir(t), "--namespace", "life")
	helm(t, "uninstall", "life", "--namespace", "life", "--wait", "--timeout", "60s")
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, crd); err != nil {
		t.Fatalf("the CRD is gone after the second uninstall: %v", err)
	}
}

// config/default installs the operator the chart installs with default values.
func TestKustomizeDefaultApply(t *testing.T) {
	manifests := kubectl(t, nil, "kustomize", repoPath(t, "config", "default"))
	objs := decode(t, manifests)
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != "userve-system" {
			t.Errorf("%s %s in namespace %q, want userve-system", o.GetKind(), o.GetName(), ns)
		}
	}
	applyServerSide(t, manifests)
	assertStored(t, objs)

	kd := deployment(t, objs)
	hd := deployment(t, decode(t, render(t, "userve", "userve-system")))
	kc, hc := kd.Spec.Template.Spec.Containers[0], hd.Spec.Template.Spec.Containers[0]
	same := func(what string, k, h any) {
		if !reflect.DeepEqual(k, h) {
			t.Errorf("config/default and the chart differ in %s:\nkustomize %+v\n     helm %+v", what, k, h)
		}
	}
	same("replicas", kd.Spec.Replicas, hd.Spec.Replicas)
	same("strategy", kd.Spec.Strategy, hd.Spec.Strategy)
	same("selector", kd.Spec.Selector, hd.Spec.Selector)
	same("pod securityContext", kd.Spec.Template.Spec.SecurityContext, hd.Spec.Template.Spec.SecurityContext)
	same("image", kc.Image, hc.Image)
	same("args", kc.Args, hc.Args)
	same("env", kc.Env, hc.Env)
	same("ports", kc.Ports, hc.Ports)
	same("probes", []any{kc.LivenessProbe, kc.ReadinessProbe}, []any{hc.LivenessProbe, hc.ReadinessProbe})
	same("resources", kc.Resources, hc.Resources)
	same("container securityContext", kc.SecurityContext, hc.SecurityContext)
	assertRestricted(t, "kustomize operator pod", &kd.Spec.Template.Spec)

	cr := &rbacv1.ClusterRole{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "userve-operator"}, cr); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cr.Rules, generatedRules(t)) {
		t.Error("the installed ClusterRole differs from config/rbac/role.yaml")
	}
	assertPodAdmitted(t, "userve-system", kd.Spec.Template)
}

// The samples are accepted by the real CRD, and the defaults fill in.
func TestSamplesApply(t *testing.T) {
	ctx := context.Background()
	dir := repoPath(t, "config", "samples")
	assertKustomizationListsAll(t, dir)

	createNamespace(t, "samples")
	manifests := kubectl(t, nil, "kustomize", dir)
	applyServerSide(t, manifests, "--namespace", "samples")
	assertStored(t, withNamespace(decode(t, manifests), "samples"))

	minimal := &v1alpha1.UserService{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "samples", Name: "minimal"}, minimal); err != nil {
		t.Fatal(err)
	}
	if minimal.Spec.DeletionPolicy != v1alpha1.DeletionPolicyRetain || minimal.Spec.API.MinApp.DefaultLimit != 20 ||
		minimal.Spec.API.Plus.TokenTTL == nil || minimal.Spec.Verification.CodeTTL == nil {
		t.Errorf("the CRD's defaults did not fill in the minimal sample: %+v", minimal.Spec)
	}
	if l := minimal.Spec.Verification.Limits; l.PerAddressHourly != 30 || l.PerTargetDaily != 10 || l.PerTenantHourly != 1000 {
		t.Errorf("the CRD did not default spec.verification.limits: %+v", l)
	}
	// The minimal sample has no delivery: it chooses log delivery, and says so.
	if !minimal.Spec.Verification.LogCodes {
		t.Error("the minimal sample registers users only with logCodes: true")
	}

	full := &v1alpha1.UserService{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "samples", Name: "acme"}, full); err != nil {
		t.Fatal(err)
	}
	var fieldName *v1alpha1.CustomField
	for i, f := range full.Spec.Profile.CustomFields {
		if f.Name == "name" {
			fieldName = &full.Spec.Profile.CustomFields[i]
		}
	}
	if fieldName == nil || fieldName.Type != v1alpha1.FieldString {
		t.Errorf("the full sample needs a string custom field `name` (the MinApp seed's PUT example): %+v", full.Spec.Profile.CustomFields)
	}
	if full.Spec.Replicas != nil || full.Spec.Autoscaling == nil || full.Spec.Ingress == nil || full.Spec.PodDisruptionBudget == nil ||
		!full.Spec.NetworkPolicy.Enabled || full.Spec.Verification.SMS == nil || full.Spec.Verification.SMS.Webhook == nil ||
		full.Spec.Verification.SMS.Webhook.SecretRef == nil {
		t.Errorf("the full sample lost settings: %+v", full.Spec)
	}

	if full.Spec.WeChat == nil {
		t.Fatalf("the full sample lost spec.wechat")
	}
	// Every Secret the full sample names is part of the samples.
	for _, ref := range []*v1alpha1.SecretKeyRef{full.Spec.Mongo.URISecretRef, full.Spec.AdminTokensSecretRef,
		full.Spec.Verification.SMS.Webhook.SecretRef, full.Spec.Verification.Mail.SMTP.PasswordSecretRef, &full.Spec.WeChat.AppSecretRef} {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "samples", Name: ref.Name}, s); err != nil {
			t.Errorf("Secret %s: %v", ref.Name, err)
		} else if len(s.Data[ref.Key]) == 0 {
			t.Errorf("Secret %s has no key %s", ref.Name, ref.Key)
		}
	}
}

// The full sample shows every spec field of the CRD except those it
// deliberately leaves out; a new field fails this until the sample uses it.
func TestFullSampleUsesEverySpecField(t *testing.T) {
	notInSample := map[string]string{
		"spec.replicas":                      "exclusive with spec.autoscaling",
		"spec.image":                         "defaults to the operator's --server-image",
		"spec.podTemplate.priorityClassName": "needs a PriorityClass of the cluster",
		"spec.pool":                          "needs a UserServicePool (docs/pools.md)",
	}
	// Kubernetes' own types are not walked into.
	opaque := []string{"spec.resources", "spec.podTemplate.nodeSelector", "spec.podTemplate.tolerations",
		"spec.podTemplate.affinity", "spec.podTemplate.topologySpreadConstraints", "spec.podDisruptionBudget.minAvailable"}
	// Network peers: label selectors are Kubernetes' own; the peer type is
	// shown in full once, under ingressFrom.
	for _, list := range []string{"ingressFrom", "metricsFrom", "dnsTo", "mongoTo", "deliveryTo", "additionalEgress.to"} {
		p := "spec.networkPolicy." + list
		opaque = append(opaque, p+".podSelector", p+".namespaceSelector")
		if list != "ingressFrom" {
			for _, f := range []string{".ipBlock", ".ipBlock.except", ".podSelector", ".namespaceSelector"} {
				notInSample[p+f] = "a NetworkPeer, shown in full under ingressFrom"
			}
		}
	}

	crd := one(t, decode(t, mustRead(t, repoPath(t, "config", "crd", "bases", "miniapp.userve.dev_userservices.yaml"))), "CustomResourceDefinition")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	specSchema, _, _ := unstructured.NestedMap(versions[0].(map[string]any), "schema", "openAPIV3Schema", "properties", "spec")

	var sample map[string]any
	if err := yaml.Unmarshal(mustRead(t, repoPath(t, "config", "samples", "miniapp_v1alpha1_userservice_full.yaml")), &sample); err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(path string, schema map[string]any, value any)
	walk = func(path string, schema map[string]any, value any) {
		if slices.Contains(opaque, path) {
			return
		}
		if items, ok := schema["items"].(map[string]any); ok {
			// Arrays: the union of their elements must cover the item schema.
			for _, v := range asSlice(value) {
				walk(path, items, v)
			}
			if len(asSlice(value)) == 0 {
				walk(path, items, nil)
			}
			return
		}
		props, _ := schema["properties"].(map[string]any)
		obj, _ := value.(map[string]any)
		for name, sub := range props {
			p := path + "." + name
			if _, skip := notInSample[p]; skip {
				continue
			}
			v, ok := obj[name]
			if !ok {
				missing = append(missing, p)
				continue
			}
			walk(p, sub.(map[string]any), v)
		}
	}
	walk("spec", specSchema, sample["spec"])
	// A field present in any element of an array counts.
	missing = dedupeCovered(missing, sample)
	if len(missing) > 0 {
		t.Errorf("config/samples/miniapp_v1alpha1_userservice_full.yaml does not use %v", missing)
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// dedupeCovered drops array item fields that some other element sets.
func dedupeCovered(missing []string, sample map[string]any) []string {
	var out []string
	for _, p := range missing {
		if !pathSetAnywhere(sample, strings.Split(p, ".")) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func pathSetAnywhere(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch x := v.(type) {
	case map[string]any:
		next, ok := x[path[0]]
		return ok && pathSetAnywhere(next, path[1:])
	case []any:
		for _, e := range x {
			if pathSetAnywhere(e, path) {
				return true
			}
		}
	}
	return false
}

// assertKustomizationListsAll fails when a YAML file of dir is not a resource
// of its kustomization (a sample nobody applies).
func assertKustomizationListsAll(t *testing.T, dir string) {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(mustRead(t, filepath.Join(dir, "kustomization.yaml")), &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not listed in %s/kustomization.yaml", base, dir)
		}
	}
}

func withNamespace(objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	for _, o := range objs {
		o.SetNamespace(ns)
	}
	return objs
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
