package pool

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the pool's series, on a registry of its own. Their labels
// never take a value per tenant, except the busiest tenants' series
// (topTenants), whose number is fixed by --metrics-top-tenants: a pool of
// ten thousand tenants exports as many series as a pool of ten.
type metrics struct {
	registry *prometheus.Registry

	tenants        prometheus.Gauge // Secrets known
	invalid        prometheus.Gauge // of which with a broken configuration
	loaded         prometheus.Gauge // built servers in service
	ambiguousHosts prometheus.Gauge

	activations       *prometheus.CounterVec // {result}
	activationSeconds prometheus.Histogram
	evictions         *prometheus.CounterVec // {reason}: idle, capacity
	reloads           prometheus.Counter     // configuration changes
	closed            prometheus.Counter     // servers whose store client was disconnected
	rejections        *prometheus.CounterVec

	requests  *prometheus.CounterVec   // {dialect, code}
	latency   *prometheus.HistogramVec // {dialect}
	inFlight  prometheus.Gauge
	queueWait prometheus.Histogram
}

func newMetrics(p *Pool, topK int) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		tenants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "userve_pool_tenants",
			Help: "Tenants placed in this pool (their Secrets)."}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{Name: "userve_pool_tenants_invalid",
			Help: "Tenants whose Secret holds no valid configuration (they answer 503; the pool's log says why)."}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "userve_pool_tenants_loaded",
			Help: "Tenants whose server is built and in service (the others cost only their configuration)."}),
		ambiguousHosts: prometheus.NewGauge(prometheus.GaugeOpts{Name: "userve_pool_ambiguous_hosts",
			Help: "Hosts claimed by more than one tenant, which route to none of them."}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "userve_pool_activations_total",
			Help: "Tenant servers built on a request, by result (ok, error)."}, []string{"result"}),
		activationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "userve_pool_activation_duration_seconds",
			Help:    "Time to build a tenant's server, its store's indexes checked.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "userve_pool_evictions_total",
			Help: "Tenant servers closed by reason: idle (the idle timeout), capacity (the least recently used, to stay within --max-loaded)."},
			[]string{"reason"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "userve_pool_reloads_total",
			Help: "Tenant configurations changed (the next request builds a new server; requests in flight finish on the old one)."}),
		closed: prometheus.NewCounter(prometheus.CounterOpts{Name: "userve_pool_tenant_servers_closed_total",
			Help: "Tenant servers closed (store client disconnected), for any reason."}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "userve_pool_rejections_total",
			Help: "Requests the pool answered itself, by reason: unknown_host, ambiguous_host, tenant_busy (--tenant-max-inflight), queue_wait (no seat within --queue-wait), tenant_config (invalid configuration), activation (its server could not be built), panic."},
			[]string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "userve_pool_requests_total",
			Help: "Requests by dialect (management, enduser, hserve, other) and status code, all tenants together."}, []string{"dialect", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "userve_pool_request_duration_seconds",
			Help:    "Request latency by dialect, all tenants together.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"dialect"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "userve_pool_requests_in_flight",
			Help: "Requests being served, all tenants together."}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "userve_pool_queue_wait_seconds",
			Help:    "Time a request waited for a seat (--max-executing), all tenants together; most wait none.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
	}
	for _, reason := range []string{evictIdle, evictCapacity} {
		m.evictions.WithLabelValues(reason) // both series exist from the start
	}
	m.registry.MustRegister(m.tenants, m.invalid, m.loaded, m.ambiguousHosts, m.activations, m.activationSeconds,
		m.evictions, m.reloads, m.closed, m.rejections, m.requests, m.latency, m.inFlight, m.queueWait,
		newTopTenants(p, topK), newSeatMetrics(p),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves /metrics.
func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	return mux
}

// Eviction reasons.
const (
	evictIdle     = "idle"
	evictCapacity = "capacity"
)

// Rejection reasons besides the registry's (unknown_host, ambiguous_host).
const (
	reasonTenantBusy   = "tenant_busy"
	reasonQueueWait    = "queue_wait"
	reasonTenantConfig = "tenant_config"
	reasonActivation   = "activation"
	reasonPanic        = "panic"
)

// seatMetrics are the admission stage's gauges and lease counter, read
// at each scrape.
type seatMetrics struct {
	p                               *Pool
	seats, inUse, queued, leaseOver *prometheus.Desc
}

func newSeatMetrics(p *Pool) *seatMetrics {
	return &seatMetrics{p: p,
		seats: prometheus.NewDesc("userve_pool_seats",
			"Requests that may execute at once, all tenants together (--max-executing).", nil, nil),
		inUse: prometheus.NewDesc("userve_pool_seats_in_use",
			"Seats held by executing requests.", nil, nil),
		queued: prometheus.NewDesc("userve_pool_requests_queued",
			"Requests waiting for a seat, all tenants together.", nil, nil),
		leaseOver: prometheus.NewDesc("userve_pool_seat_leases_expired_total",
			"Requests still running when their seat's lease (--seat-lease) ran out, which went on without it.", nil, nil),
	}
}

func (c *seatMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.seats
	ch <- c.inUse
	ch <- c.queued
	ch <- c.leaseOver
}

func (c *seatMetrics) Collect(ch chan<- prometheus.Metric) {
	a := c.p.admission
	if a == nil {
		return
	}
	inUse, queued, expired := a.stats()
	ch <- prometheus.MustNewConstMetric(c.seats, prometheus.GaugeValue, float64(a.seats))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(inUse))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(queued))
	ch <- prometheus.MustNewConstMetric(c.leaseOver, prometheus.CounterValue, float64(expired))
}

// topTenants exports per-tenant series for the k tenants that answered
// the most requests since the process started, computed at each scrape
// from counters every tenant keeps: userve_pool_tenant_requests_total,
// userve_pool_tenant_errors_total (5xx) and
// userve_pool_tenant_requests_in_flight, labelled tenant="<ns>/<name>".
// Ranking by the total since start keeps the set stable between scrapes
// (a tenant's counter stays one series), so rate() works on it.
type topTenants struct {
	p                           *Pool
	k                           int
	requests, errors5, inFlight *prometheus.Desc
}

func newTopTenants(p *Pool, k int) *topTenants {
	return &topTenants{p: p, k: k,
		requests: prometheus.NewDesc("userve_pool_tenant_requests_total",
			"Requests answered, for the busiest tenants only (--metrics-top-tenants).", []string{"tenant"}, nil),
		errors5: prometheus.NewDesc("userve_pool_tenant_errors_total",
			"Requests answered 5xx, for the busiest tenants only.", []string{"tenant"}, nil),
		inFlight: prometheus.NewDesc("userve_pool_tenant_requests_in_flight",
			"Requests being served, for the busiest tenants only.", []string{"tenant"}, nil),
	}
}

func (c *topTenants) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.errors5
	ch <- c.inFlight
}

func (c *topTenants) Collect(ch chan<- prometheus.Metric) {
	if c.k <= 0 || c.p.registry == nil {
		return
	}
	type row struct {
		name              string
		requests, errors5 uint64
		inFlight          int64
	}
	var rows []row
	for _, t := range c.p.registry.all() {
		if n := t.requests.Load(); n > 0 {
			rows = append(rows, row{t.name, n, t.errors5.Load(), t.inFlight.Load()})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].requests != rows[j].requests {
			return rows[i].requests > rows[j].requests
		}
		return rows[i].name < rows[j].name
	})
	seen := map[string]bool{}
	for _, r := range rows[:min(c.k, len(rows))] {
		if seen[r.name] { // two Secrets of one tenant: one series
			continue
		}
		seen[r.name] = true
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(r.requests), r.name)
		ch <- prometheus.MustNewConstMetric(c.errors5, prometheus.CounterValue, float64(r.errors5), r.name)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(r.inFlight), r.name)
	}
}

// statusCode is the code label.
func statusCode(code int) string { return strconv.Itoa(code) }
