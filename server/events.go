package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

// The delivery of events from the outbox (store/events*.go) to the
// tenant's backend (spec.events.webhook; docs/events.md). Every replica
// runs a worker; claims in the store make each entry go out from one of
// them (events_outbox.go), at least once, in order per user.

// Event request headers besides verify's timestamp and signature.
const (
	HeaderEventID      = "X-Userve-Event-Id"
	HeaderEventType    = "X-Userve-Event-Type"
	HeaderEventAttempt = "X-Userve-Delivery-Attempt"
)

// EventsOptions tune the delivery worker; zero fields take the defaults.
type EventsOptions struct {
	DeadAfter time.Duration // undelivered this long: dead (default 24 h)
	Lease     time.Duration // a claim's hold on an entry (default 1 min; above the client's timeout)
	Grace     time.Duration // an open entry's age before recovery judges it (default 2 min)
	// Settle is how long a worker has seen an entry as its user's next
	// before the first attempt (default 2 s): ids are taken before the
	// entry is inserted, so an entry with a smaller id (of the same user,
	// made at the same moment on another replica) may become visible a
	// little after a larger one; waiting keeps the outbox order. It is
	// wall time, whatever the store's clock.
	Settle     time.Duration
	Poll       time.Duration // between looks at the outbox when idle (default 1 s)
	RetryFirst time.Duration // the first retry's delay, doubled each time (default 10 s)
	RetryMax   time.Duration // the longest delay between retries (default 1 h)
	Parallel   int           // deliveries at once (default 4)
	// KeepDelivered and KeepDead are how long the delivery log keeps
	// delivered and dead events (default 7 and 30 days).
	KeepDelivered, KeepDead time.Duration
}

// DefaultEventsOptions are the production values.
var DefaultEventsOptions = EventsOptions{DeadAfter: 24 * time.Hour, Lease: time.Minute, Grace: 2 * time.Minute, Settle: 2 * time.Second, Poll: time.Second,
	RetryFirst: 10 * time.Second, RetryMax: time.Hour, Parallel: 4, KeepDelivered: 7 * 24 * time.Hour, KeepDead: 30 * 24 * time.Hour}

func (o EventsOptions) orDefault() EventsOptions {
	d := DefaultEventsOptions
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	o.DeadAfter, o.Lease, o.Grace, o.Poll = pick(o.DeadAfter, d.DeadAfter), pick(o.Lease, d.Lease), pick(o.Grace, d.Grace), pick(o.Poll, d.Poll)
	o.Settle = pick(o.Settle, d.Settle)
	o.RetryFirst, o.RetryMax = pick(o.RetryFirst, d.RetryFirst), pick(o.RetryMax, d.RetryMax)
	o.KeepDelivered, o.KeepDead = pick(o.KeepDelivered, d.KeepDelivered), pick(o.KeepDead, d.KeepDead)
	if o.Parallel <= 0 {
		o.Parallel = d.Parallel
	}
	return o
}

// DefaultEventsTimeout bounds one event request.
const DefaultEventsTimeout = 15 * time.Second

// eventsClient is the events' HTTP client when Options.EventsHTTP is nil:
// through the tenant's egress guard (nil: unguarded), bounded, and not
// following redirects (a redirect would carry the signed event somewhere
// the spec does not name).
func eventsClient(g *egress.Guard) *http.Client {
	c := g.HTTPClient(DefaultEventsTimeout)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// RetryDelay is the wait before retry n (1, 2, ...): RetryFirst doubled
// per retry up to RetryMax, then between half and all of it at random so
// that replicas and receivers recovering together are not hit at once.
func (o EventsOptions) RetryDelay(n int64) time.Duration {
	d := o.RetryFirst
	for i := int64(1); i < n && d < o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, o.RetryMax)
	return d/2 + mrand.N(d/2+1)
}

// eventMetrics are the delivery series (no per-user labels).
type eventMetrics struct {
	attempts *prometheus.CounterVec // by result: delivered, failed, dead
	depth    prometheus.Gauge
}

func newEventMetrics(r prometheus.Registerer) *eventMetrics {
	m := &eventMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userve_event_deliveries_total",
			Help: "Event delivery attempts by result: delivered, failed (to be retried), dead (given up).",
		}, []string{"result"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "userve_event_outbox_depth",
			Help: "Events not delivered yet (pending and open), as last counted by this replica.",
		}),
	}
	r.MustRegister(m.attempts, m.depth)
	for _, res := range []string{"delivered", "failed", "dead"} {
		m.attempts.WithLabelValues(res)
	}
	return m
}

// eventWorker sends the outbox's entries to the webhook.
type eventWorker struct {
	store   *store.Store
	client  *http.Client
	url     string
	secret  []byte
	tenant  string
	opts    EventsOptions
	metrics *eventMetrics
	log     *slog.Logger
	owner   string // this worker's name in leases
	wake    chan struct{}
	// firstSeen is when this worker first saw each entry due (Settle).
	firstSeen map[int64]time.Time

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// startEvents starts the event delivery worker (Start), unless the tenant
// has no webhook.
func (s *Server) startEvents(ctx context.Context) {
	w := s.events
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
}

// stopEvents stops the worker and waits for it (Close): an attempt under
// way is cut off, and its entry is sent again once its lease runs out.
func (s *Server) stopEvents() {
	w := s.events
	if w == nil {
		return
	}
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.cancel = nil
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	w.client.CloseIdleConnections()
}

func newEventWorker(s *Server, client *http.Client, opts EventsOptions) *eventWorker {
	wh := s.cfg.Spec().Events.Webhook
	if wh == nil {
		return nil
	}
	var types []v1alpha1.EventType
	for _, t := range v1alpha1.EventTypes() {
		if wh.Wants(t) {
			types = append(types, t)
		}
	}
	s.store.SetEvents(types...)
	if client == nil {
		client = eventsClient(s.egress)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	w := &eventWorker{store: s.store, client: client, url: wh.URL, secret: []byte(s.cfg.EventsSecret), tenant: s.cfg.Issuer,
		opts: opts.orDefault(), metrics: newEventMetrics(s.metrics.registry), log: s.log, owner: hex.EncodeToString(b),
		wake: make(chan struct{}, 1), firstSeen: map[int64]time.Time{}}
	s.store.NotifyEvents(func() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	})
	return w
}

func (w *eventWorker) run(ctx context.Context) {
	lastDepth, lastExpiry := time.Time{}, time.Time{}
	for ctx.Err() == nil {
		busy := false
		if w.store.Ready() && time.Since(lastExpiry) >= time.Hour {
			now := w.store.Clock()
			if _, err := w.store.ExpireEvents(ctx, now.Add(-w.opts.KeepDelivered), now.Add(-w.opts.KeepDead)); err == nil {
				lastExpiry = time.Now()
			}
		}
		if w.store.Ready() {
			var err error
			busy, err = w.pass(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Warn("event delivery pass failed; retrying", "error", err)
			}
			if time.Since(lastDepth) >= 5*w.opts.Poll {
				if n, err := w.store.OutboxDepth(ctx); err == nil {
					w.metrics.depth.Set(float64(n))
					lastDepth = time.Now()
				}
			}
		}
		if busy {
			continue
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-time.After(w.opts.Poll):
		}
	}
}

// pass recovers stale open entries and delivers the due ones, each user's
// head at once; busy says another pass may find more at once.
func (w *eventWorker) pass(ctx context.Context) (busy bool, err error) {
	due, stale, err := w.store.DueEvents(ctx, w.opts.Grace, 64)
	if err != nil {
		return false, err
	}
	for i := range stale {
		settled, err := w.store.RecoverOpenEvent(ctx, &stale[i])
		if err != nil {
			return false, err
		}
		busy = busy || settled
	}
	due = w.settled(due)
	var wg sync.WaitGroup
	slots := make(chan struct{}, w.opts.Parallel)
	for i := range due {
		slots <- struct{}{}
		wg.Add(1)
		go func(e *store.EventEntry) {
			defer func() { <-slots; wg.Done() }()
			claimed, err := w.store.ClaimEvent(ctx, e, w.owner, w.opts.Lease)
			if err != nil || claimed == nil {
				return // another replica has it, or the store is away (next pass)
			}
			w.deliver(ctx, claimed)
		}(&due[i])
	}
	wg.Wait()
	return busy || len(due) > 0, nil
}

// settled keeps the due entries this worker has seen due for Settle;
// it forgets the others.
func (w *eventWorker) settled(due []store.EventEntry) []store.EventEntry {
	now := time.Now()
	seen := make(map[int64]time.Time, len(due))
	var out []store.EventEntry
	for _, e := range due {
		first, ok := w.firstSeen[e.ID]
		if !ok {
			first = now
		}
		seen[e.ID] = first
		if now.Sub(first) >= w.opts.Settle {
			out = append(out, e)
		}
	}
	w.firstSeen = seen
	return out
}

// EventPayload is the JSON body of an event request (docs/events.md).
type EventPayload struct {
	ID        int64          `json:"id"`
	Type      string         `json:"type"`
	Tenant    string         `json:"tenant"`
	CreatedAt int64          `json:"created_at"`
	UserID    int64          `json:"user_id"`
	Data      map[string]any `json:"data"`
	Recovered bool           `json:"recovered"`
}

func (w *eventWorker) deliver(ctx context.Context, e *store.EventEntry) {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	body, err := json.Marshal(EventPayload{ID: e.ID, Type: e.Event, Tenant: w.tenant, CreatedAt: e.CreatedAt.Unix(), UserID: e.UserID,
		Data: data, Recovered: e.Recovered})
	start := time.Now()
	a := store.DeliveryAttempt{At: w.store.Clock()}
	if err == nil {
		a.Status, err = w.post(ctx, e, body)
	}
	a.DurationMS = time.Since(start).Milliseconds()
	if ctx.Err() != nil {
		return // stopping: the lease runs out and another pass sends it again
	}
	o := store.DeliveryOutcome{Attempt: a, Delivered: err == nil}
	result := "delivered"
	if err != nil {
		a.Error = err.Error()
		if len(a.Error) > 512 {
			a.Error = a.Error[:512]
		}
		o.Attempt = a
		result = "failed"
		if now := w.store.Clock(); !now.Before(e.RetryFrom.Add(w.opts.DeadAfter)) {
			o.Dead, result = true, "dead"
		} else {
			o.NextAt = now.Add(w.opts.RetryDelay(e.Attempts + 1))
		}
	}
	w.metrics.attempts.WithLabelValues(result).Inc()
	if rerr := w.store.RecordDelivery(ctx, e, o); rerr != nil {
		w.log.Warn("recording an event delivery failed; the event is sent again after its lease", "id", e.ID, "error", rerr)
	}
	if o.Dead {
		w.log.Warn("event dead: undelivered for too long", "id", e.ID, "event", e.Event, "attempts", e.Attempts+1, "error", a.Error)
	}
}

// post sends one signed request (verify's scheme: HMAC-SHA256 over
// "<timestamp>.<body>").
func (w *eventWorker) post(ctx context.Context, e *store.EventEntry, body []byte) (int, error) {
	// The attempt ends well inside the lease, so no other replica sends
	// the entry while this one may still succeed.
	ctx, cancel := context.WithTimeout(ctx, w.opts.Lease*3/4)
	defer cancel()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "userve-events")
	req.Header.Set(verify.HeaderTimestamp, ts)
	req.Header.Set(verify.HeaderSignature, verify.Sign(w.secret, ts, body))
	req.Header.Set(HeaderEventID, strconv.FormatInt(e.ID, 10))
	req.Header.Set(HeaderEventType, e.Event)
	req.Header.Set(HeaderEventAttempt, strconv.FormatInt(e.Attempts+1, 10))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
