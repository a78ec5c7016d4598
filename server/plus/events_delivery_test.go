package plus_test

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server"
)

// Event delivery when things go wrong: receivers failing, workers
// stopped half-way, dead letters, the egress guard; and the delivery log.

// deliveryOf is the delivery log's entry of event id.
func deliveryOf(t *testing.T, rp *replica, id int64) map[string]any {
	t.Helper()
	list := expect(t, rp.call("GET", "/userve/v1/events/deliveries/?limit=100", adminToken, nil), http.StatusOK).obj(t)
	for _, o := range list["objects"].([]any) {
		if d := o.(map[string]any); d["id"] == float64(id) {
			return d
		}
	}
	t.Fatalf("event %d is not in the delivery log: %v", id, list)
	return nil
}

// A receiver that fails three times, then recovers: the event is retried
// (with backoff) until it is accepted; the log shows every attempt.
func TestEventsRetriedUntilTheReceiverRecovers(t *testing.T) {
	rc := newReceiver(t)
	rc.answer = func(_ server.EventPayload, n int) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	tn := eventsTenant(t, rc, fastEvents, v1alpha1.EventUserCreated)
	rp := tn.replica()
	c := expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": "fay"}), http.StatusCreated).obj(t)
	got := rc.waitFor("the event, after the failures", func(got []server.EventPayload) bool { return len(got) == 1 })
	if got[0].UserID != int64(c["user_id"].(float64)) {
		t.Fatalf("event %+v", got[0])
	}
	d := waitDelivery(t, rp, got[0].ID, "delivered")
	log := d["log"].([]any)
	if d["attempts"] != float64(4) || len(log) != 4 || d["last_status"] != float64(200) || d["last_error"] != nil {
		t.Fatalf("delivery %v", d)
	}
	first := log[0].(map[string]any)
	if first["status"] != float64(503) || first["error"] != "the webhook answered 503 Service Unavailable" {
		t.Fatalf("first attempt %v", first)
	}
	metrics := scrape(t, rp)
	for _, want := range []string{`userve_event_deliveries_total{result="failed"} 3`, `userve_event_deliveries_total{result="delivered"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// waitDelivery waits until event id's delivery has status.
func waitDelivery(t *testing.T, rp *replica, id int64, status string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		d := deliveryOf(t, rp, id)
		if d["status"] == status {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery of %d: %v, want %s", id, d, status)
		}
		<-time.After(20 * time.Millisecond) // polling a condition
	}
}

func scrape(t *testing.T, rp *replica) string {
	t.Helper()
	res, err := http.Get(rp.metrics.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// A worker stopped between claiming an event and recording its delivery
// (a process killed half-way): once the claim's lease runs out, another
// replica sends the event (at least once).
func TestEventsStoppedWorkerLeavesTheEventToAnother(t *testing.T) {
	rc := newReceiver(t)
	inFlight, never := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(never) })
	rc.answer = func(_ server.EventPayload, n int) int {
		if n == 1 {
			close(inFlight)
			<-never // the first attempt never gets its answer back
		}
		return 0
	}
	opts := fastEvents
	opts.Lease = 1500 * time.Millisecond
	tn := eventsTenant(t, rc, opts, v1alpha1.EventUserCreated)
	a := tn.replica()
	expect(t, a.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": "gus"}), http.StatusCreated)
	<-inFlight
	a.server.Close() // killed between claim and record
	b := tn.replica()
	got := rc.waitFor("the event, from the other replica", func(got []server.EventPayload) bool { return len(got) >= 1 })
	d := waitDelivery(t, b, got[0].ID, "delivered")
	if d["attempts"] != float64(1) {
		// The killed attempt recorded nothing; the log holds b's only.
		t.Fatalf("delivery %v", d)
	}
}

// An event undelivered for DeadAfter is dead: no more attempts, listed
// under status=dead, counted. An admin's retry sends it again (audited).
func TestEventsDeadAfterTheConfiguredAgeAndRetried(t *testing.T) {
	rc := newReceiver(t)
	var mu sync.Mutex
	down := true
	rc.answer = func(server.EventPayload, int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusInternalServerError
		}
		return 0
	}
	opts := fastEvents
	opts.DeadAfter = opts.Settle + 500*time.Millisecond
	tn := eventsTenant(t, rc, opts, v1alpha1.EventUserCreated)
	rp := tn.replica()
	expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": "hal"}), http.StatusCreated)
	list := waitDeliveries(t, rp, "status=dead", 1)
	d := list["objects"].([]any)[0].(map[string]any)
	id := int64(d["id"].(float64))
	if d["dead_at"] == nil || d["next_attempt_at"] != nil || d["last_status"] != float64(500) || d["attempts"].(float64) < 2 {
		t.Fatalf("dead delivery %v", d)
	}
	if !strings.Contains(scrape(t, rp), `userve_event_deliveries_total{result="dead"} 1`) {
		t.Error("the dead event is not counted")
	}
	// Retrying what is not dead is a 404 naming it.
	r := expect(t, rp.call("POST", "/userve/v1/events/deliveries/999/retry/", adminToken, nil), http.StatusNotFound).obj(t)
	if r["error_msg"] != "dead event delivery 999 not found" {
		t.Errorf("retry of a missing delivery: %v", r)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	// 30 admins retry it at once: one retry wins, the others are told it
	// is not dead (any more).
	const n = 30
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- rp.call("POST", fmt.Sprintf("/userve/v1/events/deliveries/%d/retry/", id), adminToken, nil).status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusNotFound] != n-1 {
		t.Fatalf("30 parallel retries: %v, want one 200 and 29 404", count)
	}
	rc.waitFor("the retried event", func(got []server.EventPayload) bool { return len(got) == 1 && got[0].ID == id })
	waitDelivery(t, rp, id, "delivered")
	audit := expect(t, rp.call("GET", "/userve/v1/audit/?action=retryEventDelivery&limit=100", adminToken, nil), http.StatusOK).obj(t)
	if got := len(audit["objects"].([]any)); got != n+1 {
		t.Errorf("%d audit entries of retries, want %d (the 404 and the retries)", got, n+1)
	}
}

// The delivery log's filters, paging and total, and its refusals.
func TestEventsDeliveryLogQueries(t *testing.T) {
	rc := newReceiver(t)
	tn := eventsTenant(t, rc, fastEvents)
	rp := tn.replica()
	a, _ := tn.quickUser(rp, "ivanka")  // created, login
	b, _ := tn.quickUser(rp, "jackson") // created, login
	rc.waitFor("4 events", func(got []server.EventPayload) bool { return len(got) >= 4 })
	waitDeliveries(t, rp, "status=delivered", 4)
	list := waitDeliveries(t, rp, fmt.Sprintf("user_id=%d&event=user.login", b), 1)
	if d := list["objects"].([]any)[0].(map[string]any); d["user_id"] != float64(b) || d["event"] != "user.login" {
		t.Fatalf("filtered %v", d)
	}
	page := expect(t, rp.call("GET", "/userve/v1/events/deliveries/?limit=3&offset=0", adminToken, nil), http.StatusOK).obj(t)
	meta := page["meta"].(map[string]any)
	if meta["total_count"] != float64(4) || len(page["objects"].([]any)) != 3 || meta["next"] == nil {
		t.Fatalf("first page %v", page)
	}
	// Newest first.
	if first := page["objects"].([]any)[0].(map[string]any); first["user_id"] != float64(b) {
		t.Fatalf("first of the page %v", first)
	}
	waitDeliveries(t, rp, fmt.Sprintf("user_id=%d&since=0&until=99999999999", a), 2)
	waitDeliveries(t, rp, "status=pending", 0)
	waitDeliveries(t, rp, "since=99999999999", 0)
	for q, msg := range map[string]string{
		"event=user.exploded": `parameter "event": "user.exploded" is not an event type`,
		"status=late":         `parameter "status": "late" is not a delivery status (pending, delivered or dead)`,
		"user_id=0":           `parameter "user_id": "0" is not a user id`,
		"since=yesterday":     `parameter "since": "yesterday" is not a time in unix seconds`,
		"sort=id":             `parameter "sort": unknown parameter`,
		"event=a&event=b":     `parameter "event": given 2 times`,
	} {
		r := expect(t, rp.call("GET", "/userve/v1/events/deliveries/?"+q, adminToken, nil), http.StatusBadRequest).obj(t)
		if !strings.Contains(fmt.Sprint(r["error_msg"]), msg) {
			t.Errorf("?%s: %v, want %q", q, r["error_msg"], msg)
		}
	}
	expect(t, rp.call("GET", "/userve/v1/events/deliveries/", "", nil), http.StatusUnauthorized)
}

// waitMetric waits until the replica's metrics show line.
func waitMetric(t *testing.T, rp *replica, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(scrape(t, rp), line) {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q", line)
		}
		<-time.After(20 * time.Millisecond) // polling a condition
	}
}

// The outbox depth gauge follows the undelivered events: three while the
// receiver is down, none once it is back.
func TestEventsOutboxDepthGauge(t *testing.T) {
	rc := newReceiver(t)
	var mu sync.Mutex
	down := true
	rc.answer = func(server.EventPayload, int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusBadGateway
		}
		return 0
	}
	tn := eventsTenant(t, rc, fastEvents, v1alpha1.EventUserCreated)
	rp := tn.replica()
	for _, name := range []string{"mia", "ned", "ola"} {
		expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": name}), http.StatusCreated)
	}
	waitMetric(t, rp, "userve_event_outbox_depth 3\n")
	mu.Lock()
	down = false
	mu.Unlock()
	rc.waitFor("the three events", func(got []server.EventPayload) bool { return len(got) == 3 })
	waitMetric(t, rp, "userve_event_outbox_depth 0\n")
}

// A pooled tenant's events go through its egress guard: a receiver on a
// refused address (loopback) is never connected to, the attempt fails
// naming the refusal, and the guard counts it; allowed, the event goes.
func TestEventsGoThroughTheEgressGuard(t *testing.T) {
	rc := newReceiver(t)
	opts := fastEvents
	opts.RetryFirst, opts.RetryMax = 50*time.Millisecond, 50*time.Millisecond
	tn := eventsTenant(t, rc, opts, v1alpha1.EventUserCreated)
	tn.egress = egress.New(egress.Options{})
	rp := tn.replica()
	expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": "pia"}), http.StatusCreated)
	waitMetric(t, rp, `userve_egress_refused_total{class="loopback"}`)
	waitDeliveries(t, rp, "status=pending", 1)
	var d map[string]any
	for deadline := time.Now().Add(time.Minute); ; {
		list := expect(t, rp.call("GET", "/userve/v1/events/deliveries/", adminToken, nil), http.StatusOK).obj(t)
		if d = list["objects"].([]any)[0].(map[string]any); d["attempts"] != float64(0) || time.Now().After(deadline) {
			break
		}
		<-time.After(20 * time.Millisecond) // polling a condition
	}
	if e, _ := d["last_error"].(string); !strings.Contains(e, "loopback") || d["last_status"] != nil {
		t.Fatalf("a refused attempt: %v", d)
	}
	rc.mu.Lock()
	n := rc.requests + rc.forged
	rc.mu.Unlock()
	if n != 0 {
		t.Fatalf("the receiver got %d requests through a refusing guard", n)
	}

	allowed := eventsTenant(t, rc, opts, v1alpha1.EventUserCreated)
	allowed.egress = egress.New(egress.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ap := allowed.replica()
	expect(t, ap.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"nickname": "quinn"}), http.StatusCreated)
	rc.waitFor("the allowed tenant's event", func(got []server.EventPayload) bool { return len(got) == 1 })
}
