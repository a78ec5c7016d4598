package observability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/observability/alerts"
	"userve.dev/userve/observability/dashboards"
	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify/verifytest"
	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/testbin"
)

var kube *kubefixture.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(func() int {
		e, err := kubefixture.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubefixture:", err)
			return 1
		}
		defer e.Stop()
		kube = e
		return mongofixture.Run(m)
	}())
}

// Every metric an alert or a dashboard names is exported on the real
// /metrics of a tenant server (on FerretDB, exercised so that its vectors
// have series), of the operator's manager (on envtest, reconciling a
// tenant) or of a pool (pool_metrics_test.go). A renamed metric, or a typo in a query, fails here.
func TestAlertsAndDashboardsNameOnlyExportedMetrics(t *testing.T) {
	exported := map[string]bool{}
	for _, name := range slices.Concat(tenantMetrics(t), operatorMetrics(t), poolMetrics(t)) {
		exported[name] = true
	}

	named := map[string][]string{} // metric -> where
	root := repoRoot(t)
	groups, err := alerts.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			for _, m := range metricNames(t, r.Expr) {
				named[m] = append(named[m], "alert "+r.Alert)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(root, dashboards.Dir, "*.json"))
	if len(files) < 2 {
		t.Fatalf("no dashboards under %s", dashboards.Dir)
	}
	for _, f := range files {
		for _, q := range dashboardQueries(t, f) {
			for _, m := range metricNames(t, q) {
				named[m] = append(named[m], "dashboard "+filepath.Base(f))
			}
		}
	}
	if len(named) < 15 {
		t.Fatalf("only %d metrics named: %v", len(named), named)
	}
	var missing []string
	for m, where := range named {
		if !exported[m] {
			missing = append(missing, fmt.Sprintf("%s (in %s)", m, strings.Join(slices.Compact(where), ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("named but exported by none of the tenant server, the operator and the pool:\n  %s", strings.Join(missing, "\n  "))
	}
	t.Logf("%d metrics named by alerts and dashboards, all exported", len(named))
}

// The checker itself: a name nobody exports is caught, in a PromQL
// expression and in a Grafana variable query.
func TestMetricNamesFindsEveryName(t *testing.T) {
	got := metricNames(t, `sum by (tenant) (rate(userve_nope_total{code=~"5.."}[$__rate_interval])) / on (tenant) group_left max(up{tenant="$tenant"}) or vector(0)`)
	sort.Strings(got)
	if !slices.Equal(got, []string{"up", "userve_nope_total"}) {
		t.Errorf("metricNames = %v", got)
	}
	got = metricNames(t, `label_values(userve_http_requests_total{namespace="$namespace"}, tenant)`)
	if !slices.Equal(got, []string{"userve_http_requests_total"}) {
		t.Errorf("metricNames of a variable query = %v", got)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	r, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// grafanaVars are replaced by PromQL before parsing: Grafana expands them.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$namespace", "ns", "$tenant", "t", "$job", "j")

var labelValues = regexp.MustCompile(`^\s*label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// metricNames are the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	expr = grafanaVars.Replace(expr)
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	e, err := metricsql.Parse(expr)
	if err != nil {
		t.Fatalf("parse %q: %v", expr, err)
	}
	var names []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		me, ok := x.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, filters := range me.LabelFilterss {
			for _, f := range filters {
				if f.Label == "__name__" && !slices.Contains(names, f.Value) {
					names = append(names, f.Value)
				}
			}
		}
	})
	return names
}

// dashboardQueries are the expressions of a dashboard's panels and the
// queries of its variables.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			out = append(out, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			out = append(out, q)
		}
	}
	return out
}

// scrape is the metric names on a /metrics endpoint, histogram and summary
// series included (name_bucket, name_sum, name_count).
func scrape(t *testing.T, url string) []string {
	t.Helper()
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("%s: %s %s", url, res.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	var names []string
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		names = append(names, name)
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names = append(names, name+"_bucket", name+"_sum", name+"_count")
		case dto.MetricType_SUMMARY:
			names = append(names, name+"_sum", name+"_count")
		}
	}
	return names
}

const (
	adminToken = "observability-admin-token-0123456789"
	jwtKey     = "observability-jwt-key-0123456789abcdef0123"
)

// tenantMetrics runs a real tenant server over FerretDB, sends it requests
// of both dialects (successes and failures) and scrapes its /metrics.
func tenantMetrics(t *testing.T) []string {
	t.Helper()
	db := mongofixture.NewDatabase(t).Name()
	uri := mongofixture.URI(t)
	// Phone codes go to a webhook (the fake of server/verify/verifytest).
	secret := []byte("observability-webhook-secret")
	hook := verifytest.NewWebhook(t, secret)
	us := &v1alpha1.UserService{}
	us.Name, us.Namespace = "acme", "tenants"
	us.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: hook.URL,
		SecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, MongoURI: uri, Database: db, WebhookSecret: string(secret),
		AdminTokens: []config.AdminToken{{Name: "admin-1", Token: adminToken}}, JWTKey: []byte(jwtKey), Issuer: "tenants/acme"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, uri, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	s := server.New(cfg, st, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(conformance.Handler(t, s))
	t.Cleanup(srv.Close)
	metrics := httptest.NewServer(s.MetricsHandler())
	t.Cleanup(metrics.Close)

	call := func(method, path, token, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, data)
		}
	}
	call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, `{"nickname":"first"}`, http.StatusCreated)
	call("GET", "/userve/v2.0/miniapp/user_profile/", adminToken, "", http.StatusOK)
	call("POST", "/userve/v1/wallet/transactions/", adminToken, `{"user_id":1,"account":"new_wallet","amount":10,"idempotency_key":"k"}`, http.StatusCreated)
	call("POST", "/api/v2/verifycodes/register", "", `{"phone":"13800000001"}`, http.StatusAccepted)
	call("POST", "/api/v2/auth/login", "", `{"login":"nobody","password":"wrong"}`, http.StatusUnprocessableEntity)
	call("GET", "/api/v2/users/1", "", "", http.StatusOK)
	call("GET", "/no/such/route", "", "", http.StatusNotFound)
	return scrape(t, metrics.URL+"/metrics")
}

// operatorMetrics runs the operator's manager on envtest, with a tenant to
// reconcile, and scrapes its /metrics once the tenant has a status.
func operatorMetrics(t *testing.T) []string {
	t.Helper()
	addr := freeAddr(t)
	mgr, pool, err := controllers.NewManager(kube.Config, controllers.Options{
		ServerImage:        "example.com/userve:test",
		MetricsBindAddress: addr,
		// The same /metrics handler and registry, without the TLS and
		// token review in front (tested in controllers/integration).
		MetricsInsecure:              true,
		HealthProbeBindAddress:       "0",
		RetryInterval:                time.Second,
		DatabaseTimeout:              time.Second,
		SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		pool.Close(context.Background())
	})

	c := kube.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "observed"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "observed", Name: "mongo"},
		StringData: map[string]string{"uri": mongofixture.URI(t)}}); err != nil {
		t.Fatal(err)
	}
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: "observed", Name: "acme"}}
	us.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
	if err := c.Create(ctx, us); err != nil {
		t.Fatal(err)
	}
	var names []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		names = scrape(t, "http://"+addr+"/metrics")
		if slices.Contains(names, "userve_tenant_ready") && slices.Contains(names, "controller_runtime_reconcile_time_seconds_bucket") &&
			slices.Contains(names, "workqueue_queue_duration_seconds_bucket") {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator's /metrics never showed a reconciled tenant: %v", names)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
