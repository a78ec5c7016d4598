package plus_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the replica's /metrics as Prometheus would.
func (rp *replica) scrape() map[string]*dto.MetricFamily {
	rp.t.Helper()
	res, err := http.Get(rp.metrics.URL + "/metrics")
	if err != nil {
		rp.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		rp.t.Fatalf("GET /metrics on the metrics listener: %d", res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		rp.t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the counter or gauge of the one series of name with labels.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(want)
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("/metrics has no %s%v", name, want)
	return 0
}

// The domain metrics move with what the end-user dialect does, and carry
// no user data: every label value is from a fixed list.
func TestDomainMetricsCountLoginsCodesAndWallet(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()

	// Every series exists at zero before anything happens.
	m := rp.scrape()
	for _, s := range [][]string{
		{"userve_store_errors_total", "kind", "unavailable"},
		{"userve_store_errors_total", "kind", "not_ready"},
		{"userve_login_failures_total", "method", "password"},
		{"userve_login_throttled_total", "kind", "account"},
		{"userve_login_throttled_total", "kind", "address"},
		{"userve_login_throttled_total", "kind", "checks_busy"},
		{"userve_codes_sent_total", "channel", "sms"},
		{"userve_code_delivery_failures_total", "channel", "mail"},
		{"userve_wallet_operations_total", "operation", "transfer", "result", "ok"},
	} {
		if v := value(t, m, s[0], s[1:]...); v != 0 {
			t.Errorf("%v = %v before any request", s, v)
		}
	}

	// Codes: one sent by sms (registration), one failed by mail.
	a, tokenA := tn.register(rp, "alice", "13800000001", "secret-alice")
	tn.outbox.fail = errors.New("relay down")
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "bob@example.com"}), http.StatusServiceUnavailable)
	tn.outbox.fail = nil

	// Logins: five wrong passwords, then the account budget answers 429.
	for range 5 {
		expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "alice", "password": "wrong"}), "password")
	}
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "alice", "password": "wrong"}), http.StatusTooManyRequests)

	// Wallet: a credit, a transfer, its replay, one refused for the balance.
	b, _ := tn.quickUser(rp, "bob_payee")
	expect(t, adminTx(rp, map[string]any{"user_id": a, "account": "new_wallet", "amount": 100, "idempotency_key": "m1"}), http.StatusCreated)
	transfer := func(amount int, key string) resp {
		return rp.call("POST", "/api/v2/plus-pay/transfer", tokenA, map[string]any{"user": b, "amount": amount}, "Idempotency-Key: "+key)
	}
	expect(t, transfer(10, "t1"), http.StatusCreated)
	expect(t, transfer(10, "t1"), http.StatusCreated)
	expectInvalid(t, transfer(1000, "t2"), "amount")

	m = rp.scrape()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"userve_codes_sent_total", []string{"channel", "sms"}, 1},
		{"userve_codes_sent_total", []string{"channel", "mail"}, 0},
		{"userve_code_delivery_failures_total", []string{"channel", "mail"}, 1},
		{"userve_code_delivery_failures_total", []string{"channel", "sms"}, 0},
		{"userve_login_failures_total", []string{"method", "password"}, 5},
		{"userve_login_throttled_total", []string{"kind", "account"}, 1},
		{"userve_login_throttled_total", []string{"kind", "address"}, 0},
		{"userve_wallet_operations_total", []string{"operation", "credit", "result", "ok"}, 1},
		{"userve_wallet_operations_total", []string{"operation", "transfer", "result", "ok"}, 1},
		{"userve_wallet_operations_total", []string{"operation", "transfer", "result", "replayed"}, 1},
		{"userve_wallet_operations_total", []string{"operation", "transfer", "result", "rejected"}, 1},
		{"userve_store_errors_total", []string{"kind", "internal"}, 0},
	} {
		if got := value(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Routes are templates: no series names a user id, login, phone or e-mail.
	for name, f := range m {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				for _, secret := range []string{"alice", "bob_payee", "13800000001", "@example.com"} {
					if strings.Contains(l.GetValue(), secret) {
						t.Errorf("%s{%s=%q} carries user data", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
	if v := value(t, m, "userve_http_requests_total", "method", "POST", "route", "/api/v2/auth/login", "code", "429"); v != 1 {
		t.Errorf("429s of /auth/login = %v, want 1", v)
	}
}

// The address budget has its own 429 series.
func TestLoginThrottledByAddress(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	// Fifty failures from one address over many accounts exhaust it.
	for i := range 50 {
		login := "nobody" + strings.Repeat("x", i%10) + string(rune('a'+i/10))
		expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": login, "password": "wrong"}), "password")
	}
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "someone-else", "password": "wrong"}), http.StatusTooManyRequests)
	m := rp.scrape()
	if got := value(t, m, "userve_login_throttled_total", "kind", "address"); got != 1 {
		t.Errorf("address 429s = %v, want 1", got)
	}
	if got := value(t, m, "userve_login_failures_total", "method", "password"); got != 50 {
		t.Errorf("login failures = %v, want 50", got)
	}
}

// Under 30 parallel wrong logins on one account, the counters agree with
// the answers exactly: each 422 is one failure, each 429 one account 429.
func TestLoginMetricsAgreeWithAnswersUnderParallelLoad(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.quickUser(rp, "target_user")
	const n = 30
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "target_user", "password": "wrong"}).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]float64{}
	for s := range statuses {
		counts[s]++
	}
	// The account budget (slots taken before the password check) admits
	// five; the counters must match what it answered.
	if counts[http.StatusUnprocessableEntity] != 5 || counts[http.StatusTooManyRequests] != n-5 {
		t.Fatalf("answers %v: want five 422s and the rest 429s", counts)
	}
	m := rp.scrape()
	if got := value(t, m, "userve_login_failures_total", "method", "password"); got != counts[http.StatusUnprocessableEntity] {
		t.Errorf("login failures = %v, 422 answers = %v", got, counts[http.StatusUnprocessableEntity])
	}
	if got := value(t, m, "userve_login_throttled_total", "kind", "account"); got != counts[http.StatusTooManyRequests] {
		t.Errorf("account 429s counted = %v, 429 answers = %v", got, counts[http.StatusTooManyRequests])
	}
}
