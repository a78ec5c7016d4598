package kubefixture_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/testbin"
)

var env *kubefixture.Env

func TestMain(m *testing.M) { os.Exit(kubefixture.Run(m, &env)) }

func TestUserServiceRoundTripsThroughAPIServer(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fixture-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns.Name}}
	if err := env.Client.Create(ctx, us); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.UserService
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(us), &got); err != nil {
		t.Fatal(err)
	}
	// The CRD's schema defaults prove the generated CRD is the one installed.
	if got.Spec.DeletionPolicy != v1alpha1.DeletionPolicyRetain || got.Spec.API.MinApp.MaxLimit != 1000 {
		t.Fatalf("defaults not applied: deletionPolicy=%q minapp.maxLimit=%d", got.Spec.DeletionPolicy, got.Spec.API.MinApp.MaxLimit)
	}
}

func TestKubeconfigWorksWithKubectl(t *testing.T) {
	kubectl, err := testbin.Path("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "version", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"gitVersion": "v1.37.`) {
		t.Fatalf("server is not reporting v1.37.x:\n%s", out)
	}
}
