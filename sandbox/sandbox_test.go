package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/testbin"
)

var env *kubefixture.Env

func TestMain(m *testing.M) { os.Exit(kubefixture.Run(m, &env)) }

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func TestReadSamplesOrdersAndSkipsKustomization(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a_tenant.yaml":      "apiVersion: miniapp.userve.dev/v1alpha1\nkind: UserService\nmetadata: {name: shop}\n",
		"b_secrets.yml":      "# comment\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s1}\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\n",
		"c_ns.json":          `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n1"}}`,
		"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nmetadata: {name: k}\n",
		"README.md":          "not a manifest",
	})
	objs, err := readSamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Namespace/n1", "Secret/s1", "ConfigMap/c1", "UserService/shop"}
	if got := kinds(objs); !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestReadSamplesNamesTheBadFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"broken.yaml": "apiVersion: v1\nkind: Secret\n"})
	_, err := readSamples(dir)
	if err == nil || !strings.Contains(err.Error(), "broken.yaml") || !strings.Contains(err.Error(), "metadata.name") {
		t.Fatalf("err = %v", err)
	}
	dir = writeFiles(t, map[string]string{"bad.yaml": "kind: [unclosed\n"})
	if _, err := readSamples(dir); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestTheRepositorySamplesParse(t *testing.T) {
	root, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := readSamples(filepath.Join(root, "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("no samples")
	}
	// make dev starts the pool samples too (config/samples/pools), after
	// their namespace.
	got := strings.Join(kinds(objs), " ")
	for _, want := range []string{"Namespace/userve-pools", "UserServicePool/shared", "UserService/shop", "UserService/blog"} {
		if !strings.Contains(got, want) {
			t.Errorf("samples %s lack %s", got, want)
		}
	}
	if !strings.HasPrefix(got, "Namespace/userve-pools") {
		t.Errorf("the pool's namespace is not applied first: %s", got)
	}
}

func secretData(t *testing.T, o *unstructured.Unstructured, key string) string {
	t.Helper()
	enc, _, _ := unstructured.NestedString(o.Object, "data", key)
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestLocalizeSecretsPointsClusterMongoAtTheSandbox(t *testing.T) {
	objs, err := decodeManifests([]byte(`
apiVersion: v1
kind: Secret
metadata: {name: m}
stringData:
  uri: mongodb://u:p@mongodb.databases.svc.cluster.local:27017/?authSource=admin
  other: keep me
data:
  short: ` + base64.StdEncoding.EncodeToString([]byte("mongodb://mongo.db.svc:27017")) + `
  external: ` + base64.StdEncoding.EncodeToString([]byte("mongodb://db.example.com:27017/")) + `
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {uri: "mongodb://x.svc/"}
`))
	if err != nil {
		t.Fatal(err)
	}
	notes, replaced, err := localizeSecrets(objs, "mongodb://127.0.0.1:1234/")
	if err != nil {
		t.Fatal(err)
	}
	s := objs[0]
	for key, want := range map[string]string{
		"uri":      "mongodb://127.0.0.1:1234/",
		"short":    "mongodb://127.0.0.1:1234/",
		"external": "mongodb://db.example.com:27017/",
		"other":    "keep me",
	} {
		if got := secretData(t, s, key); got != want {
			t.Errorf("data.%s = %q, want %q", key, got, want)
		}
	}
	if _, found, _ := unstructured.NestedMap(s.Object, "stringData"); found {
		t.Error("stringData kept")
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "Secret m key short") || !strings.Contains(notes[1], "mongodb.databases.svc.cluster.local") {
		t.Errorf("notes %q", notes)
	}
	if replaced["/m/uri"] != "mongodb://u:p@mongodb.databases.svc.cluster.local:27017/?authSource=admin" || len(replaced) != 2 {
		t.Errorf("replaced = %v", replaced)
	}
	// ConfigMaps are left alone: only Secrets carry URIs the operator reads.
	if v, _, _ := unstructured.NestedString(objs[1].Object, "data", "uri"); v != "mongodb://x.svc/" {
		t.Errorf("configmap changed: %q", v)
	}
}

func TestLocalizeSecretsRejectsBadData(t *testing.T) {
	objs, _ := decodeManifests([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: m}\ndata: {k: '%%%'}\n"))
	if _, _, err := localizeSecrets(objs, "mongodb://x/"); err == nil || !strings.Contains(err.Error(), "data.k is not base64") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"mongodb://127.0.0.1:27017/":               "mongodb://127.0.0.1:27017/",
		"mongodb://user:secret@db:27017/x?a=b":     "mongodb://user:***@db:27017/x?a=b",
		"mongodb://user@db/":                       "mongodb://user@db/",
		"mongodb+srv://u:p@cluster.example.com/db": "mongodb+srv://u:***@cluster.example.com/db",
		"not a uri":                             "not a uri",
		"mongodb://db/path@with-at-in-path?x=y": "mongodb://db/path@with-at-in-path?x=y",
	} {
		if got := redactURI(in); got != want {
			t.Errorf("redactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResetRefusesForeignDirectories(t *testing.T) {
	dir := writeFiles(t, map[string]string{"kubeconfig": "x", "my-thesis.tex": "precious"})
	if err := resetState(dir); err == nil || !strings.Contains(err.Error(), "my-thesis.tex") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "my-thesis.tex")); err != nil {
		t.Fatal("reset removed a foreign file")
	}
	state := writeFiles(t, map[string]string{"kubeconfig": "x", "ports.json": "{}"})
	if err := os.MkdirAll(filepath.Join(state, "etcd", "member"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := resetState(state); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatal("state not removed")
	}
	if err := resetState(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestLockStateAdmitsOneSandbox(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockState(dir); err == nil || !strings.Contains(err.Error(), "another userve-dev") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lockState(dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
}

func TestStatusLine(t *testing.T) {
	now := time.Now()
	old := metav1.NewTime(now.Add(-time.Minute))
	fresh := metav1.NewTime(now.Add(-time.Second))
	us := func(phase string, since metav1.Time, typ, msg string) *v1alpha1.UserService {
		return &v1alpha1.UserService{
			ObjectMeta: metav1.ObjectMeta{CreationTimestamp: since},
			Status: v1alpha1.UserServiceStatus{Phase: phase, Conditions: []metav1.Condition{
				{Type: typ, Message: msg, LastTransitionTime: since},
			}},
		}
	}
	if line, _ := statusLine(us(v1alpha1.PhaseDegraded, fresh, v1alpha1.ConditionDegraded, "database unreachable"), now); line != "is Degraded: database unreachable" {
		t.Errorf("degraded: %q", line)
	}
	if line, wait := statusLine(us(v1alpha1.PhasePending, fresh, v1alpha1.ConditionReady, "waiting"), now); line != "" || wait <= 0 {
		t.Errorf("fresh pending: %q after %s", line, wait)
	}
	if line, _ := statusLine(us(v1alpha1.PhasePending, old, v1alpha1.ConditionReady, "secret acme-mongo not found"), now); line != "is still Pending: secret acme-mongo not found" {
		t.Errorf("stuck pending: %q", line)
	}
	if line, wait := statusLine(us(v1alpha1.PhaseReady, old, v1alpha1.ConditionReady, "ok"), now); line != "" || wait != 0 {
		t.Errorf("ready: %q %s", line, wait)
	}
}

func TestApplySamplesCreatesThenLeavesUnchanged(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	manifests := `
apiVersion: v1
kind: Namespace
metadata: {name: samples-test}
---
apiVersion: v1
kind: Secret
metadata: {name: tokens, namespace: samples-test}
stringData: {tokens: "a,b"}
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: minimal}
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: shop, namespace: samples-test}
spec:
  adminTokensSecretRef: {name: tokens, key: tokens}
`
	apply := func() []string {
		objs, err := decodeManifests([]byte(manifests))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := localizeSecrets(objs, "mongodb://127.0.0.1:1/"); err != nil {
			t.Fatal(err)
		}
		lines, err := applySamples(ctx, c, objs)
		if err != nil {
			t.Fatal(err)
		}
		return lines
	}
	first := apply()
	want := []string{
		"Namespace samples-test created",
		"Secret samples-test/tokens created",
		"UserService default/minimal created",
		"UserService samples-test/shop created",
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first apply: %q", first)
	}
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "samples-test", Name: "tokens"}, &s); err != nil || string(s.Data["tokens"]) != "a,b" {
		t.Fatalf("secret %v %v", s.Data, err)
	}
	second := apply()
	for _, l := range second {
		if !strings.HasSuffix(l, " unchanged") {
			t.Errorf("second apply changed something: %q", second)
			break
		}
	}
	// An edit by someone else to a field the sample does not set survives.
	var us v1alpha1.UserService
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "minimal"}, &us); err != nil {
		t.Fatal(err)
	}
	base := us.DeepCopy()
	us.Spec.Suspend = true
	if err := c.Patch(ctx, &us, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	apply()
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "minimal"}, &us); err != nil || !us.Spec.Suspend {
		t.Fatalf("a re-apply undid an edit of another field: suspend=%v %v", us.Spec.Suspend, err)
	}
}

// Sample tenants with spec.wechat on the real WeChat are pointed at the
// sandbox's fake, which then plays the first one's app with its secret.
func TestLocalizeWeChatPointsSamplesAtTheFake(t *testing.T) {
	objs, err := decodeManifests([]byte(`
apiVersion: v1
kind: Secret
metadata: {name: wx}
stringData: {app-secret: s3cret}
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: shop}
spec:
  wechat: {appID: wx1, appSecretRef: {name: wx, key: app-secret}, apiBaseURL: https://api.weixin.qq.com}
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: own}
spec:
  wechat: {appID: wx2, appSecretRef: {name: wx, key: app-secret}, apiBaseURL: https://wechat-proxy.example.com}
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: plain}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := localizeSecrets(objs, "mongodb://127.0.0.1:1/"); err != nil {
		t.Fatal(err)
	}
	wx, err := startWeChatFake("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wx.stop()
	notes, err := localizeWeChat(objs, wx)
	if err != nil {
		t.Fatal(err)
	}
	base := func(i int) string {
		s, _, _ := unstructured.NestedString(objs[i].Object, "spec", "wechat", "apiBaseURL")
		return s
	}
	if base(1) != wx.url || base(2) != "https://wechat-proxy.example.com" || len(notes) != 1 {
		t.Fatalf("bases %q %q, notes %v", base(1), base(2), notes)
	}
	if wx.fake.AppID != "wx1" || wx.fake.Secret != "s3cret" || wx.app != "shop" {
		t.Fatalf("fake plays %q/%q for %q", wx.fake.AppID, wx.fake.Secret, wx.app)
	}
	// The fake answers like WeChat: a code from /fake/login exchanges once.
	res, err := http.Post(wx.url+"/fake/login", "application/json", strings.NewReader(`{"openid":"o-demo"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Code string }
	_ = json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	res, err = http.Get(wx.url + "/sns/jscode2session?appid=wx1&secret=s3cret&grant_type=authorization_code&js_code=" + got.Code)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"openid":"o-demo"`) {
		t.Fatalf("jscode2session: %s", body)
	}
}
