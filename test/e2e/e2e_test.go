// Package e2e runs `userve-dev` (make dev) as a user would (the binaries built from this
// tree, the repository's samples) and drives it with bin/kubectl and HTTP:
// tenants are applied, called in both dialects, changed, scaled, suspended,
// isolated from each other, killed, deleted, and the sandbox is stopped with
// Ctrl-C and started again on the same state.
package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/test/testbin"
)

const shopTenant = `
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-shop
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata:
  name: shop
  namespace: e2e-shop
spec:
  deletionPolicy: Delete
  verification:
    logCodes: true # the test reads codes from the tenant's log
`

const blogTenant = `
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-blog
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata:
  name: blog
  namespace: e2e-blog
spec:
  verification:
    logCodes: true # the test reads codes from the tenant's log
`

const profilesPath = "/userve/v2.0/miniapp/user_profile/"

func TestSandbox(t *testing.T) {
	root, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"etcd", "kube-apiserver", "kubectl", "ferretdb-auth"} {
		if _, err := testbin.Path(tool); err != nil {
			t.Fatal(err)
		}
	}
	userveDev := buildUserveDev(t, root)
	stateDir := t.TempDir()
	s := startSandbox(t, userveDev, root, stateDir)

	// Shared between the steps, in order; a failed step fails the rest.
	var (
		shopURL, shopToken string
		aliceID            float64
		userJWT            string
		blogURL            string
	)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("samples print a working URL and admin token", func(t *testing.T) {
		out := s.waitOutput("tenant default/minimal is ready", 2*time.Minute)
		m := regexp.MustCompile(`tenant default/minimal is ready[^\n]*\n\s+URL:\s+(\S+)\n\s+admin token:\s+(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no URL and token for default/minimal in:\n%s", out)
		}
		status, body := call(t, http.MethodGet, m[1]+profilesPath, m[2], nil)
		if status != http.StatusOK || field(body, "meta", "total_count") == nil {
			t.Fatalf("printed curl line: %d %v", status, body)
		}
		// Each tenant logs in to MongoDB as a user of its own.
		if !strings.Contains(out, "MongoDB user: userve.default.minimal") {
			t.Errorf("no own database user for default/minimal in:\n%s", out)
		}
		if !strings.Contains(out, "export KUBECONFIG="+stateDir+"/kubeconfig") {
			t.Errorf("no kubectl hint in:\n%s", out)
		}
	})

	step("the WeChat sample logs in against the sandbox's fake WeChat", func(t *testing.T) {
		out := s.waitOutput("tenant default/acme is ready", 2*time.Minute)
		fake := regexp.MustCompile(`fake WeChat:\s+(\S+) plays mini-program`).FindStringSubmatch(out)
		acme := regexp.MustCompile(`tenant default/acme is ready[^\n]*\n\s+URL:\s+(\S+)\n\s+admin token:\s+(\S+)`).FindStringSubmatch(out)
		if fake == nil || acme == nil {
			t.Fatalf("no fake WeChat or acme URL in:\n%s", out)
		}
		// wx.login, played by the fake.
		status, login := call(t, http.MethodPost, fake[1]+"/fake/login", "", map[string]any{"openid": "o-e2e", "unionid": "u-e2e"})
		code, _ := field(login, "code").(string)
		if status != http.StatusOK || code == "" {
			t.Fatalf("fake login: %d %v", status, login)
		}
		status, body := call(t, http.MethodPost, acme[1]+"/api/v2/auth/wechat", "", map[string]any{"code": code})
		if status != http.StatusCreated || field(body, "created") != true || field(body, "access_token") == nil {
			t.Fatalf("WeChat login: %d %v", status, body)
		}
		status, body = call(t, http.MethodGet, acme[1]+profilesPath+"?unionid=u-e2e", acme[2], nil)
		if status != http.StatusOK || field(body, "meta", "total_count") != float64(1) {
			t.Fatalf("WeChat user in the management list: %d %v", status, body)
		}
	})

	step("the pool serves shop and blog through their printed URLs, each with its own token", func(t *testing.T) {
		type printed struct{ url, token string }
		tenants := map[string]printed{}
		for _, name := range []string{"shop", "blog"} {
			out := s.waitOutput("tenant default/"+name+" is ready", 2*time.Minute)
			m := regexp.MustCompile(`tenant default/` + name + ` is ready[^\n]*\n\s+URL:\s+(\S+)\n\s+admin token:\s+(\S+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no URL and token for default/%s in:\n%s", name, out)
			}
			if !regexp.MustCompile(`served by:\s+UserServicePool shared \(pods userve-pools/userve-pool-shared-0, userve-pools/userve-pool-shared-1\)[^\n]*Host ` + name + `\.default\.svc\.cluster\.local`).MatchString(out) {
				t.Errorf("no 'served by' line for default/%s in:\n%s", name, out)
			}
			tenants[name] = printed{m[1], m[2]}
			// Pooled indeed: no Deployment of its own answers.
			if got := s.kubectl("", "get", "usvc", name, "-o", "jsonpath={.status.pool}"); got != "shared" {
				t.Fatalf("usvc %s status.pool = %q", name, got)
			}
			if _, err := s.tryKubectl("", "get", "deploy", name); err == nil || !strings.Contains(err.Error(), "NotFound") {
				t.Fatalf("deploy %s still exists (err %v)", name, err)
			}
		}
		shop, blog := tenants["shop"], tenants["blog"]
		if shop.url == blog.url || shop.token == blog.token {
			t.Fatalf("shop and blog share a URL or token: %v %v", shop, blog)
		}
		status, body := call(t, http.MethodPost, shop.url+profilesPath, shop.token, map[string]any{"nickname": "pooled-alice"})
		if status != http.StatusCreated {
			t.Fatalf("create a profile on shop: %d %v", status, body)
		}
		for _, c := range []struct {
			tenant, token printed
			want          int
			count         float64
		}{{shop, shop, http.StatusOK, 1}, {blog, blog, http.StatusOK, 0}, {shop, blog, http.StatusUnauthorized, 0}, {blog, shop, http.StatusUnauthorized, 0}} {
			status, body := call(t, http.MethodGet, c.tenant.url+profilesPath, c.token.token, nil)
			if status != c.want || (c.want == http.StatusOK && field(body, "meta", "total_count") != c.count) {
				t.Errorf("GET %s with %s's token: %d %v, want %d (total_count %v)", c.tenant.url, c.token.url, status, body, c.want, c.count)
			}
		}

		// Out of the pool: the operator waits for blog's own pods to be ready
		// endpoints of its Service, which the sandbox's runtime provides.
		s.kubectl("", "patch", "usvc", "blog", "--type", "json", "-p", `[{"op":"remove","path":"/spec/pool"}]`)
		s.kubectl("", "wait", "--for=jsonpath={.status.conditions[?(@.type==\"Placed\")].reason}=Dedicated", "usvc/blog", "--timeout=60s")
		s.kubectl("", "get", "deploy", "blog")
		status, body = call(t, http.MethodGet, blog.url+profilesPath, blog.token, nil)
		if status != http.StatusOK || field(body, "meta", "total_count") != float64(0) {
			t.Fatalf("blog on its own pods, same URL and token: %d %v", status, body)
		}
	})

	step("1 apply a tenant and wait for Ready", func(t *testing.T) {
		s.kubectl(shopTenant, "apply", "-f", "-")
		s.kubectl("", "-n", "e2e-shop", "wait", "--for=condition=Ready", "usvc/shop", "--timeout=120s")
		shopURL = s.tenantURL("e2e-shop", "shop")
		shopToken = s.adminToken("e2e-shop", "shop")
		if got := s.kubectl("", "-n", "e2e-shop", "get", "usvc", "shop", "-o", "jsonpath={.status.readyReplicas}"); got != "1" {
			t.Fatalf("status.readyReplicas = %q", got)
		}
	})

	step("2 both dialects answer on the tenant URL", func(t *testing.T) {
		status, body := call(t, http.MethodPost, shopURL+profilesPath, shopToken, map[string]any{"nickname": "alice", "city": "Shenzhen"})
		if status != http.StatusCreated {
			t.Fatalf("create profile: %d %v", status, body)
		}
		aliceID, _ = field(body, "user_id").(float64)
		if aliceID == 0 {
			t.Fatalf("no user_id in %v", body)
		}
		if status, _ := call(t, http.MethodGet, shopURL+profilesPath, "wrong-token", nil); status != http.StatusUnauthorized {
			t.Fatalf("wrong admin token: %d", status)
		}

		// An end user registers with an e-mail code (logged: log delivery) and logs in.
		email := "bob@example.com"
		if status, body := call(t, http.MethodPost, shopURL+"/api/v2/verifycodes/register", "", map[string]any{"email": email}); status != http.StatusAccepted {
			t.Fatalf("register code: %d %v", status, body)
		}
		code := s.verificationCode("e2e-shop", "shop", email)
		status, body = call(t, http.MethodPost, shopURL+"/api/v2/users", "", map[string]any{
			"name": "bobby", "email": email, "password": "secret-pass", "verifiable_type": "mail", "verifiable_code": code,
		})
		if status != http.StatusCreated || field(body, "token") == nil {
			t.Fatalf("register: %d %v", status, body)
		}
		status, body = call(t, http.MethodPost, shopURL+"/api/v2/auth/login", "", map[string]any{"login": email, "password": "secret-pass"})
		if status != http.StatusOK {
			t.Fatalf("login: %d %v", status, body)
		}
		userJWT, _ = field(body, "access_token").(string)
		status, body = call(t, http.MethodGet, shopURL+"/api/v2/user", userJWT, nil)
		if status != http.StatusOK || field(body, "name") != "bobby" {
			t.Fatalf("GET /user: %d %v", status, body)
		}
		// One store, two views: bob is in the management list too.
		status, body = call(t, http.MethodGet, shopURL+profilesPath+"?order_by=user_id", shopToken, nil)
		if status != http.StatusOK || field(body, "meta", "total_count") != float64(2) {
			t.Fatalf("list: %d %v", status, body)
		}
	})

	step("3 a custom field added in the CR is accepted after the rollout", func(t *testing.T) {
		profile := fmt.Sprintf("%s%s%d/", shopURL, profilesPath, int64(aliceID))
		if status, _ := call(t, http.MethodPut, profile, shopToken, map[string]any{"vip": true}); status != http.StatusBadRequest {
			t.Fatalf("undeclared field: %d, want 400", status)
		}
		before := s.readyPids("e2e-shop", "shop")
		s.kubectl("", "-n", "e2e-shop", "patch", "usvc", "shop", "--type", "merge",
			"-p", `{"spec":{"profile":{"customFields":[{"name":"vip","type":"boolean"}]}}}`)
		eventually(t, "PUT to accept vip", 2*time.Minute, func() (bool, string) {
			status, body, err := tryCall(http.MethodPut, profile, shopToken, map[string]any{"vip": true})
			return err == nil && status == http.StatusOK && field(body, "vip") == true, fmt.Sprintf("%d %v %v", status, body, err)
		})
		s.kubectl("", "-n", "e2e-shop", "rollout", "status", "deploy/shop", "--timeout=60s")
		after := s.readyPids("e2e-shop", "shop")
		for _, pid := range before {
			if slices.Contains(after, pid) {
				t.Errorf("process %d survived the rollout (before %v, after %v)", pid, before, after)
			}
		}
		if status, _ := call(t, http.MethodPut, profile, shopToken, map[string]any{"vip": "yes"}); status != http.StatusBadRequest {
			t.Errorf("wrong type for vip: %d, want 400", status)
		}
	})

	step("4 scale to 3 and back to 1", func(t *testing.T) {
		for _, n := range []int{3, 1} {
			s.kubectl("", "-n", "e2e-shop", "scale", "usvc/shop", fmt.Sprintf("--replicas=%d", n))
			eventually(t, fmt.Sprintf("%d ready replicas", n), 2*time.Minute, func() (bool, string) {
				ready := s.kubectl("", "-n", "e2e-shop", "get", "usvc", "shop", "-o", "jsonpath={.status.readyReplicas}")
				pids := s.readyPids("e2e-shop", "shop")
				t, _ := s.tenant("e2e-shop", "shop")
				return ready == fmt.Sprint(n) && len(pids) == n && len(t.Pods) == n,
					fmt.Sprintf("usvc readyReplicas %q, local ready %v, local %d", ready, pids, len(t.Pods))
			})
			if status, _ := call(t, http.MethodGet, shopURL+profilesPath, shopToken, nil); status != http.StatusOK {
				t.Fatalf("with %d replicas: %d", n, status)
			}
		}
	})

	step("5 suspend and resume keeps the data", func(t *testing.T) {
		s.kubectl("", "-n", "e2e-shop", "patch", "usvc", "shop", "--type", "merge", "-p", `{"spec":{"suspend":true}}`)
		eventually(t, "no processes and a 503", 2*time.Minute, func() (bool, string) {
			t, _ := s.tenant("e2e-shop", "shop")
			status, _, err := tryCall(http.MethodGet, shopURL+"/readyz", "", nil)
			return len(t.Pods) == 0 && status == http.StatusServiceUnavailable, fmt.Sprintf("pods %v, status %d %v", t.Pods, status, err)
		})
		s.kubectl("", "-n", "e2e-shop", "patch", "usvc", "shop", "--type", "merge", "-p", `{"spec":{"suspend":false}}`)
		s.kubectl("", "-n", "e2e-shop", "wait", "--for=condition=Ready", "usvc/shop", "--timeout=120s")
		eventually(t, "alice back", time.Minute, func() (bool, string) {
			status, body, err := tryCall(http.MethodGet, fmt.Sprintf("%s%s%d/", shopURL, profilesPath, int64(aliceID)), shopToken, nil)
			return err == nil && status == http.StatusOK && field(body, "nickname") == "alice" && field(body, "vip") == true,
				fmt.Sprintf("%d %v %v", status, body, err)
		})
		if status, body := call(t, http.MethodGet, shopURL+"/api/v2/user", userJWT, nil); status != http.StatusOK {
			t.Fatalf("bob's token after resume: %d %v", status, body)
		}
	})

	step("7 two tenants never see each other's users or accept each other's tokens", func(t *testing.T) {
		s.kubectl(blogTenant, "apply", "-f", "-")
		s.kubectl("", "-n", "e2e-blog", "wait", "--for=condition=Ready", "usvc/blog", "--timeout=120s")
		blogURL = s.tenantURL("e2e-blog", "blog")
		blogToken := s.adminToken("e2e-blog", "blog")
		if blogToken == shopToken {
			t.Fatal("two tenants share an admin token")
		}
		status, body := call(t, http.MethodGet, blogURL+profilesPath, blogToken, nil)
		if status != http.StatusOK || field(body, "meta", "total_count") != float64(0) {
			t.Fatalf("blog sees users: %d %v", status, body)
		}
		if status, _ := call(t, http.MethodGet, blogURL+profilesPath, shopToken, nil); status != http.StatusUnauthorized {
			t.Errorf("shop's admin token on blog: %d, want 401", status)
		}
		if status, _ := call(t, http.MethodGet, shopURL+profilesPath, blogToken, nil); status != http.StatusUnauthorized {
			t.Errorf("blog's admin token on shop: %d, want 401", status)
		}
		if status, _ := call(t, http.MethodGet, blogURL+"/api/v2/user", userJWT, nil); status != http.StatusUnauthorized {
			t.Errorf("shop's user token on blog: %d, want 401", status)
		}
		if status, _ := call(t, http.MethodGet, blogURL+"/api/v2/users/bobby", "", nil); status != http.StatusNotFound {
			t.Errorf("shop's user visible on blog: %d, want 404", status)
		}
		// The same e-mail registers independently on blog.
		email := "bob@example.com"
		if status, body := call(t, http.MethodPost, blogURL+"/api/v2/verifycodes/register", "", map[string]any{"email": email}); status != http.StatusAccepted {
			t.Fatalf("blog register code: %d %v", status, body)
		}
		code := s.verificationCode("e2e-blog", "blog", email)
		status, body = call(t, http.MethodPost, blogURL+"/api/v2/users", "", map[string]any{
			"name": "bobby", "email": email, "password": "other-pass", "verifiable_type": "mail", "verifiable_code": code,
		})
		if status != http.StatusCreated {
			t.Fatalf("blog register: %d %v", status, body)
		}
		if status, _ := call(t, http.MethodPost, shopURL+"/api/v2/auth/login", "", map[string]any{"login": email, "password": "other-pass"}); status == http.StatusOK {
			t.Error("blog's password logs in on shop")
		}
	})

	step("8 a killed tenant process comes back", func(t *testing.T) {
		pids := s.readyPids("e2e-blog", "blog")
		if len(pids) != 1 {
			t.Fatalf("blog pids %v", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a new ready process", time.Minute, func() (bool, string) {
			now := s.readyPids("e2e-blog", "blog")
			return len(now) == 1 && now[0] != pids[0], fmt.Sprint(now)
		})
		eventually(t, "the blog URL answering", 30*time.Second, func() (bool, string) {
			status, _, err := tryCall(http.MethodGet, blogURL+"/api/v2/users/bobby", "", nil)
			return err == nil && status == http.StatusOK, fmt.Sprintf("%d %v", status, err)
		})
		if !strings.Contains(s.output(), "exited (signal: killed); restarting") {
			t.Errorf("the sandbox did not report the crash:\n%s", s.output())
		}
	})

	step("6 delete with deletionPolicy Delete drops the database", func(t *testing.T) {
		database := strings.TrimSpace(s.kubectl("", "-n", "e2e-shop", "get", "usvc", "shop", "-o", "jsonpath={.status.database}"))
		enc := s.kubectl("", "-n", "userve-system", "get", "secret", "userve-mongo", "-o", "jsonpath={.data.uri}")
		uri, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || database == "" {
			t.Fatalf("database %q, mongo URI %q: %v", database, enc, err)
		}
		client, err := mongo.Connect(options.Client().ApplyURI(string(uri)).SetTimeout(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Disconnect(context.Background())
		names := func() []string {
			n, err := client.ListDatabaseNames(context.Background(), map[string]any{})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if !slices.Contains(names(), database) {
			t.Fatalf("database %s not found before the delete: %v", database, names())
		}
		pids := s.readyPids("e2e-shop", "shop")
		s.kubectl("", "-n", "e2e-shop", "delete", "usvc", "shop", "--timeout=120s")
		if slices.Contains(names(), database) {
			t.Errorf("database %s still there after the delete", database)
		}
		eventually(t, "the Deployment and processes gone", time.Minute, func() (bool, string) {
			_, err := s.tryKubectl("", "-n", "e2e-shop", "get", "deploy", "shop")
			for _, pid := range pids {
				if processAlive(pid) {
					return false, fmt.Sprintf("pid %d alive", pid)
				}
			}
			return err != nil && strings.Contains(err.Error(), "NotFound"), fmt.Sprint(err)
		})
		// blog (Retain, untouched) still works.
		if status, _ := call(t, http.MethodGet, blogURL+"/api/v2/users/bobby", "", nil); status != http.StatusOK {
			t.Errorf("blog after shop's deletion: %d", status)
		}
	})

	step("Ctrl-C stops every process it started", func(t *testing.T) {
		before := s.descendants()
		if len(before) < 5 { // userve-dev, etcd, kube-apiserver, ferretdb, tenants
			t.Fatalf("only %d processes in the sandbox: %v", len(before), before)
		}
		s.interrupt()
		for pid, name := range before {
			if processAlive(pid) {
				t.Errorf("%s (pid %d) survived Ctrl-C", name, pid)
			}
		}
		if out := s.output(); !strings.Contains(out, "stopped; nothing left running") {
			t.Errorf("no goodbye in:\n%s", out)
		}
	})

	step("a restart keeps tenants, URLs and data", func(t *testing.T) {
		s = startSandbox(t, userveDev, root, stateDir)
		s.kubectl("", "-n", "e2e-blog", "wait", "--for=condition=Ready", "usvc/blog", "--timeout=120s")
		if url := s.tenantURL("e2e-blog", "blog"); url != blogURL {
			t.Errorf("blog's URL moved from %s to %s", blogURL, url)
		}
		eventually(t, "bob on blog", time.Minute, func() (bool, string) {
			status, _, err := tryCall(http.MethodGet, blogURL+"/api/v2/users/bobby", "", nil)
			return err == nil && status == http.StatusOK, fmt.Sprintf("%d %v", status, err)
		})
		if _, err := s.tryKubectl("", "-n", "e2e-shop", "get", "usvc", "shop"); err == nil {
			t.Error("the deleted tenant came back")
		}
		before := s.descendants()
		s.interrupt()
		for pid, name := range before {
			if processAlive(pid) {
				t.Errorf("%s (pid %d) survived Ctrl-C", name, pid)
			}
		}
	})
}
