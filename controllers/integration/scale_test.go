package integration_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/testbin"
)

func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := testbin.Path("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func TestKubectlScaleThroughTheScaleSubresource(t *testing.T) {
	us := newTenant(t)
	deployment(t, us)

	if out, err := kubectl(t, "-n", us.Namespace, "scale", "usvc/acme", "--replicas=3"); err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	if r := tenant(t, us).Spec.Replicas; r == nil || *r != 3 {
		t.Fatalf("spec.replicas = %v after kubectl scale", r)
	}
	eventually(t, "the Deployment follows", func() error {
		if r := *deployment(t, us).Spec.Replicas; r != 3 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")

	// The scale subresource reads status.replicas and status.selector.
	out, err := kubectl(t, "get", "--raw", "/apis/miniapp.userve.dev/v1alpha1/namespaces/"+us.Namespace+"/userservices/acme/scale")
	if err != nil {
		t.Fatalf("get scale: %v\n%s", err, out)
	}
	var scale struct {
		Spec   struct{ Replicas int32 }
		Status struct {
			Replicas int32
			Selector string
		}
	}
	if err := json.Unmarshal([]byte(out), &scale); err != nil {
		t.Fatal(err)
	}
	if scale.Spec.Replicas != 3 || scale.Status.Replicas != 3 || scale.Status.Selector != "app.kubernetes.io/instance=acme,app.kubernetes.io/name=userve-server" {
		t.Errorf("scale = %+v", scale)
	}

	// The printer columns.
	out, err = kubectl(t, "-n", us.Namespace, "get", "usvc", "acme")
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	for _, want := range []string{"READY", "REPLICAS", "ENDPOINT", "AGE", "True", "http://acme." + us.Namespace + ".svc:8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get usvc lacks %q:\n%s", want, out)
		}
	}

	// With autoscaling on, scaling by hand is refused with the CEL message.
	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Replicas = nil
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 5}
	})
	out, err = kubectl(t, "-n", us.Namespace, "scale", "usvc/acme", "--replicas=2")
	if err == nil || !strings.Contains(out, "spec.replicas and spec.autoscaling are mutually exclusive") {
		t.Errorf("kubectl scale with autoscaling on: err %v\n%s", err, out)
	}
}

func TestKubectlExplainShowsFieldDocs(t *testing.T) {
	out, err := kubectl(t, "explain", "usvc.spec.deletionPolicy")
	if err != nil {
		t.Fatalf("kubectl explain: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Retain keeps it, Delete drops it") {
		t.Errorf("explain lacks the field's documentation:\n%s", out)
	}
}
