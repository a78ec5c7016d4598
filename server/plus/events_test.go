package plus_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/verify"
)

// receiver is the tenant's backend: it checks each request's signature as
// docs/events.md tells receivers to, and keeps what it accepted.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex
	accepted []server.EventPayload
	count    map[int64]int // acceptances per event id
	requests int
	forged   int // requests whose signature did not verify
	// answer, when set, picks the status of a request (0: accept).
	answer  func(p server.EventPayload, request int) int
	changed chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, secret: []byte("events-secret-0123456789abcdef0123"), count: map[int64]int{}, changed: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts, sig := r.Header.Get(verify.HeaderTimestamp), r.Header.Get(verify.HeaderSignature)
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if !verify.CheckSignature(rc.secret, ts, body, sig) || time.Since(time.Unix(sec, 0)) > 5*time.Minute {
		rc.mu.Lock()
		rc.forged++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p server.EventPayload
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&p); err != nil || r.Header.Get(server.HeaderEventID) != strconv.FormatInt(p.ID, 10) ||
		r.Header.Get(server.HeaderEventType) != p.Type || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("malformed event request: %v %v %s", err, r.Header, body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.requests++
	n, answer := rc.requests, rc.answer
	rc.mu.Unlock()
	if answer != nil {
		if status := answer(p, n); status != 0 {
			w.WriteHeader(status)
			rc.signal()
			return
		}
	}
	rc.mu.Lock()
	rc.accepted = append(rc.accepted, p)
	rc.count[p.ID]++
	rc.mu.Unlock()
	rc.signal()
}

func (rc *receiver) signal() {
	select {
	case rc.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds over the accepted events (checked after
// each request), or fails after a minute.
func (rc *receiver) waitFor(what string, cond func(got []server.EventPayload) bool) []server.EventPayload {
	rc.t.Helper()
	deadline := time.After(time.Minute)
	for {
		rc.mu.Lock()
		got := slices.Clone(rc.accepted)
		rc.mu.Unlock()
		if cond(got) {
			return got
		}
		select {
		case <-rc.changed:
		case <-deadline:
			rc.t.Fatalf("waiting for %s; accepted %d: %+v", what, len(got), got)
		}
	}
}

// ofUser are the events of user id, in arrival order.
func ofUser(got []server.EventPayload, id int64) []server.EventPayload {
	var out []server.EventPayload
	for _, p := range got {
		if p.UserID == id {
			out = append(out, p)
		}
	}
	return out
}

func types(ps []server.EventPayload) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Type)
	}
	return out
}

const eventsClientID = "events0123456789abcd"

// fastEvents are delivery knobs that make retries, leases and dead
// letters happen within a test.
var fastEvents = server.EventsOptions{Poll: 50 * time.Millisecond, RetryFirst: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	Lease: 5 * time.Second, Grace: time.Second, Settle: time.Second}

// eventsTenant is a tenant whose webhook is rc, on the wall clock.
func eventsTenant(t *testing.T, rc *receiver, opts server.EventsOptions, only ...v1alpha1.EventType) *tenant {
	tn := newTenant(t)
	tn.clock.real = true
	tn.spec.Events.Webhook = &v1alpha1.EventWebhookSpec{URL: rc.srv.URL + "/hooks/userve", SecretRef: &v1alpha1.SecretKeyRef{Name: "events", Key: "secret"},
		Events: only}
	tn.cfgEdit = func(c *config.Config) { c.EventsSecret = string(rc.secret) }
	tn.events = opts
	return tn
}

// Every event type, emitted once by its own path: end-user registration,
// login, profile edit and password change; the admin's ban, wallet
// credit and deletion; a management creation, a merge and an import.
func TestEventsEveryTypeOnceByItsPath(t *testing.T) {
	rc := newReceiver(t)
	tn := eventsTenant(t, rc, fastEvents)
	tn.spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: eventsClientID}
	rp := tn.replica()

	id, _ := tn.register(rp, "alice", "13800000001", "secret-alice")
	r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "alice", "password": "secret-alice"}), http.StatusOK)
	tok := r.obj(t)["access_token"].(string)
	expect(t, rp.call("PATCH", "/api/v2/user", tok, map[string]any{"bio": "hello"}), http.StatusNoContent)
	expect(t, rp.call("PUT", "/api/v2/user/password", tok, map[string]any{
		"old_password": "secret-alice", "password": "secret-alice-2", "password_confirmation": "secret-alice-2"}), http.StatusNoContent)
	expect(t, rp.call("PUT", fmt.Sprintf("/userve/v1/users/%d/ban/", id), adminToken, map[string]any{"reason": "spam"}), http.StatusOK)
	expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", adminToken, map[string]any{"user_id": id, "account": "new_wallet", "amount": 500}), http.StatusCreated)
	expect(t, rp.call("DELETE", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", id), adminToken, nil), http.StatusNoContent)

	want := []string{"user.created", "user.login", "user.login", "user.updated", "user.password_changed", "user.banned", "wallet.transaction", "user.deleted"}
	got := rc.waitFor("alice's events", func(got []server.EventPayload) bool { return len(ofUser(got, id)) >= len(want) })
	mine := ofUser(got, id)
	if !slices.Equal(types(mine), want) {
		t.Fatalf("alice's events %v, want %v", types(mine), want)
	}
	if f := mine[3].Data["fields"]; fmt.Sprint(f) != "[bio]" {
		t.Errorf("user.updated names fields %v, want [bio]", f)
	}
	if mine[5].Data["reason"] != "spam" || mine[5].Data["expires_at"] != nil {
		t.Errorf("user.banned data %v", mine[5].Data)
	}
	if mine[6].Data["amount"] != json.Number("500") || mine[6].Data["account"] != "new_wallet" || mine[6].Data["state"] != "completed" {
		t.Errorf("wallet.transaction data %v", mine[6].Data)
	}
	if mine[2].Data["method"] != "password" || mine[0].Tenant != "tenants/acme" {
		t.Errorf("login %v, tenant %q", mine[2].Data, mine[0].Tenant)
	}

	// A management creation, then a merge of it into bert (from: deleted,
	// merged; into: updated), then an import of two records.
	bert, _ := tn.quickUser(rp, "bert")
	c := expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": "carol"}), http.StatusCreated).obj(t)
	carol := int64(c["user_id"].(float64))
	expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, map[string]any{"from": carol, "into": bert}), http.StatusOK)
	rec := `[{"id": 9001, "name": "imported-1", "phone": "13911119001"}, {"id": 9002, "name": "imported-2", "phone": "13911119002"}]`
	expect(t, rp.call("POST", "/userve/v1/import/users/?format=thinksns", "", rec, admin), http.StatusOK)

	got = rc.waitFor("the merge's and import's events", func(got []server.EventPayload) bool {
		return len(ofUser(got, carol)) >= 2 && len(ofUser(got, 9001)) >= 1 && len(ofUser(got, 9002)) >= 1 && len(ofUser(got, bert)) >= 2
	})
	if ts := types(ofUser(got, carol)); !slices.Equal(ts, []string{"user.created", "user.deleted"}) {
		t.Errorf("carol's events %v", ts)
	}
	if d := ofUser(got, carol)[1].Data; d["reason"] != "merged" || d["merged_into"] != json.Number(strconv.FormatInt(bert, 10)) {
		t.Errorf("merge's user.deleted data %v", d)
	}
	// bert: created (in the store) and login; the merge moved none of
	// carol's fields onto him (he has a nickname), so no user.updated.
	if ts := types(ofUser(got, bert)); !slices.Equal(ts, []string{"user.created", "user.login"}) {
		t.Errorf("bert's events %v", ts)
	}
	for _, id := range []int64{9001, 9002} {
		if ts := types(ofUser(got, id)); !slices.Equal(ts, []string{"user.created"}) {
			t.Errorf("imported user %d's events %v", id, ts)
		}
	}
	// The MinApp SDK dialect: registration (a created user and its first
	// session) and a login, both through /hserve.
	sdk := "X-Hydrogen-Client-ID: " + eventsClientID
	m := expect(t, rp.call("POST", "/hserve/v2.1/register/username/", "", map[string]any{"username": "kim_sdk", "password": "secret-kim"}, sdk), http.StatusCreated).obj(t)
	kim := int64(m["user_id"].(float64))
	expect(t, rp.call("POST", "/hserve/v2.1/login/username/", "", map[string]any{"username": "kim_sdk", "password": "secret-kim"}, sdk), http.StatusCreated)
	got = rc.waitFor("kim's events", func(got []server.EventPayload) bool { return len(ofUser(got, kim)) >= 3 })
	if ts := types(ofUser(got, kim)); !slices.Equal(ts, []string{"user.created", "user.login", "user.login"}) {
		t.Errorf("kim's events %v", ts)
	}
	if d := ofUser(got, kim)[2].Data; d["api"] != "hserve" || d["method"] != "password" {
		t.Errorf("an SDK login's data %v", d)
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for id, n := range rc.count {
		if n != 1 {
			t.Errorf("event %d accepted %d times", id, n)
		}
	}
	if rc.forged != 0 {
		t.Errorf("%d requests did not verify", rc.forged)
	}
}

// The subscription filters: a webhook for logins only records nothing else.
func TestEventsOnlyTheSubscribedTypes(t *testing.T) {
	rc := newReceiver(t)
	tn := eventsTenant(t, rc, fastEvents, v1alpha1.EventUserLogin)
	rp := tn.replica()
	id, _ := tn.quickUser(rp, "dora")
	got := rc.waitFor("dora's login", func(got []server.EventPayload) bool { return len(got) >= 1 })
	if len(got) != 1 || got[0].Type != "user.login" || got[0].UserID != id {
		t.Fatalf("events %+v", got)
	}
	list := expect(t, rp.call("GET", "/userve/v1/events/deliveries/", adminToken, nil), http.StatusOK).obj(t)
	if list["meta"].(map[string]any)["total_count"] != float64(1) {
		t.Fatalf("outbox holds other events: %v", list)
	}
}

// 30 parallel changes of one user, made on two replicas that both deliver
// and a receiver that answers at random speeds: the events arrive in the
// outbox's order, each once.
func TestEventsOfOneUserArriveInOrder(t *testing.T) {
	rc := newReceiver(t)
	var slow sync.Mutex
	n := 0
	rc.answer = func(server.EventPayload, int) int {
		slow.Lock()
		n++
		d := time.Duration(n%4) * 5 * time.Millisecond
		slow.Unlock()
		<-time.After(d) // uneven answers: a second delivery at once would overtake
		return 0
	}
	tn := eventsTenant(t, rc, fastEvents)
	a, b := tn.replica(), tn.replica()
	id, tok := tn.quickUser(a, "erin") // user.created, user.login
	const changes = 30
	var wg sync.WaitGroup
	for i := 1; i <= changes; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rp := []*replica{a, b}[i%2]
			r := rp.call("PATCH", "/api/v2/user", tok, map[string]any{"bio": fmt.Sprintf("bio %d", i)})
			if r.status != http.StatusNoContent {
				t.Errorf("change %d: %d %s", i, r.status, r.body)
			}
		}(i)
	}
	wg.Wait()
	got := ofUser(rc.waitFor("32 events", func(got []server.EventPayload) bool { return len(ofUser(got, id)) >= changes+2 }), id)
	if len(got) != changes+2 || got[0].Type != "user.created" || got[1].Type != "user.login" {
		t.Fatalf("%d events: %v", len(got), types(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Fatalf("event %d (id %d) arrived after %d: %v", i, got[i].ID, got[i-1].ID, got)
		}
	}
}

// Two replicas share the outbox: each of 40 users' creations, made on
// both in parallel, reaches the receiver exactly once.
func TestEventsTwoReplicasDeliverEachOnce(t *testing.T) {
	rc := newReceiver(t)
	tn := eventsTenant(t, rc, fastEvents, v1alpha1.EventUserCreated)
	a, b := tn.replica(), tn.replica()
	const users = 40
	var wg sync.WaitGroup
	for i := 0; i < users; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rp := []*replica{a, b}[i%2]
			expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": fmt.Sprintf("u%d", i)}), http.StatusCreated)
		}(i)
	}
	wg.Wait()
	rc.waitFor("40 creations", func(got []server.EventPayload) bool { return len(got) >= users })
	// Both workers keep polling; the deliveries all being recorded as
	// delivered means neither has one left to send.
	waitDeliveries(t, a, "status=delivered", users)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.accepted) != users || len(rc.count) != users {
		t.Fatalf("%d deliveries of %d events, want %d of %d", len(rc.accepted), len(rc.count), users, users)
	}
}

// waitDeliveries waits until the delivery log lists want entries for query.
func waitDeliveries(t *testing.T, rp *replica, query string, want int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		list := expect(t, rp.call("GET", "/userve/v1/events/deliveries/?"+query, adminToken, nil), http.StatusOK).obj(t)
		if list["meta"].(map[string]any)["total_count"] == float64(want) {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries ?%s: %v, want %d", query, list["meta"], want)
		}
		<-time.After(20 * time.Millisecond) // polling a condition, not asserting an absence
	}
}
