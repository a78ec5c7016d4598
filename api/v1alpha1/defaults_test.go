package v1alpha1_test

import (
	"os"
	"path/filepath"
	"testing"

	"encoding/json"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
)

// crdSchema is the schema of the generated CRD, the one the API server
// defaults with.
func crdSchema(t *testing.T) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "miniapp.userve.dev_userservices.yaml"))
	if err != nil {
		t.Fatalf("read the generated CRD (run make manifests): %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != v1alpha1.GroupVersion.Version {
		t.Fatalf("CRD versions = %+v, want only %s", crd.Spec.Versions, v1alpha1.GroupVersion.Version)
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

// applyDefaults is the API server's structural defaulting, top down: a
// missing property with a default gets it, then defaulting descends into
// every present object and array item.
func applyDefaults(t *testing.T, x any, s *apiextensionsv1.JSONSchemaProps) {
	switch v := x.(type) {
	case map[string]any:
		for name, prop := range s.Properties {
			if _, ok := v[name]; !ok && prop.Default != nil {
				var d any
				if err := json.Unmarshal(prop.Default.Raw, &d); err != nil {
					t.Fatalf("default of %s: %v", name, err)
				}
				v[name] = d
			}
			if child, ok := v[name]; ok {
				applyDefaults(t, child, &prop)
			}
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for _, item := range v {
				applyDefaults(t, item, s.Items.Schema)
			}
		}
	}
}

// TestDefaultsMatchCRD checks SetDefaults against the CRD's own defaulting,
// for manifests from the sparsest to one with every defaulted sub-object.
func TestDefaultsMatchCRD(t *testing.T) {
	schema := crdSchema(t)
	manifests := map[string]string{
		"no spec": `
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: acme, namespace: shop}`,
		"empty spec": `
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: acme}
spec: {}`,
		"every optional object": `
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: acme}
spec:
  api: {minapp: {enabled: false}, plus: {maxLimit: 30}}
  autoscaling: {maxReplicas: 4}
  podDisruptionBudget: {}
  verification:
    sms: {webhook: {url: "https://sms.example.com/send"}}
    mail: {smtp: {host: smtp.example.com, from: noreply@example.com}}
  wechat: {appID: wx1, appSecretRef: {name: wx, key: secret}}`,
		"values kept": `
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: acme}
spec:
  deletionPolicy: Delete
  api: {plus: {tokenTTL: 10m, refreshTTL: 48h, defaultLimit: 5}}
  autoscaling: {minReplicas: 2, maxReplicas: 4, targetCPUUtilizationPercentage: 50}
  podDisruptionBudget: {minAvailable: "50%"}
  verification: {codeTTL: 2m, mail: {smtp: {host: h, port: 25, from: a@b}}}
  wechat: {appID: wx1, appSecretRef: {name: wx, key: s}, apiBaseURL: "http://127.0.0.1:1", createUsers: false}`,
	}
	for name, manifest := range manifests {
		t.Run(name, func(t *testing.T) {
			var byCRD map[string]any
			if err := yaml.Unmarshal([]byte(manifest), &byCRD); err != nil {
				t.Fatal(err)
			}
			applyDefaults(t, byCRD, schema)
			var want v1alpha1.UserService
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(byCRD, &want); err != nil {
				t.Fatal(err)
			}

			var got v1alpha1.UserService
			if err := yaml.UnmarshalStrict([]byte(manifest), &got); err != nil {
				t.Fatal(err)
			}
			v1alpha1.SetDefaults(&got)

			if !equality.Semantic.DeepEqual(got.Spec, want.Spec) {
				g, _ := yaml.Marshal(got.Spec)
				w, _ := yaml.Marshal(want.Spec)
				t.Fatalf("SetDefaults disagrees with the CRD.\nSetDefaults:\n%s\nCRD:\n%s", g, w)
			}
		})
	}
}

func TestSetDefaultsKeepsGivenValues(t *testing.T) {
	us := v1alpha1.UserService{}
	us.Spec.API.Plus.MaxLimit = 30
	us.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	v1alpha1.SetDefaults(&us)
	if us.Spec.API.Plus.MaxLimit != 30 || us.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
		t.Fatalf("given values overwritten: %+v", us.Spec)
	}
	if us.Spec.API.Plus.DefaultLimit != v1alpha1.DefaultPlusLimit {
		t.Fatalf("plus.defaultLimit = %d, want %d", us.Spec.API.Plus.DefaultLimit, v1alpha1.DefaultPlusLimit)
	}
}

func TestEnabled(t *testing.T) {
	f, tr := false, true
	if !v1alpha1.Enabled(nil) || !v1alpha1.Enabled(&tr) || v1alpha1.Enabled(&f) {
		t.Fatal("Enabled: nil and true are on, false is off")
	}
}
