package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Pools is a shared pool's dashboard (`userve pool`, docs/pools.md): its
// tenants, activations and evictions, traffic of all tenants together, what
// the pool refused, and the busiest tenants, selected by the pool's
// Prometheus job.
func Pools() *dashboard.DashboardBuilder {
	const sel = `namespace="$namespace", job="$job"`
	return base("userve-pools", "userve / Pools", "pools").
		Description("One shared pool (all its replicas): tenants loaded, activations, evictions, traffic, refusals and the busiest tenants.").
		WithVariable(datasourceVariable()).
		WithVariable(queryVariable("namespace", "Namespace", `label_values(userve_pool_tenants, namespace)`)).
		WithVariable(queryVariable("job", "Pool", `label_values(userve_pool_tenants{namespace="$namespace"}, job)`)).
		WithRow(dashboard.NewRowBuilder("Tenants")).
		WithPanel(single("Tenants", "Tenants placed in the pool (their Secrets; every replica reports them all).", "none",
			query(`max(userve_pool_tenants{`+sel+`})`, "tenants"))).
		WithPanel(single("Loaded", "Tenant servers built, all replicas (each replica builds the tenants it serves).", "none",
			query(`sum(userve_pool_tenants_loaded{`+sel+`})`, "loaded"))).
		WithPanel(single("Invalid", "Tenants whose Secret holds no valid configuration (the UservePoolTenantInvalid alert).", "none",
			query(`max(userve_pool_tenants_invalid{`+sel+`})`, "invalid"))).
		WithPanel(single("Ambiguous hosts", "Hosts claimed by more than one tenant, which route to none (the UservePoolAmbiguousHost alert).", "none",
			query(`max(userve_pool_ambiguous_hosts{`+sel+`})`, "ambiguous"))).
		WithRow(dashboard.NewRowBuilder("Activations")).
		WithPanel(graph("Activations and evictions", "Tenant servers built on a request, closed after the idle timeout or to stay within --max-loaded, and rebuilt after a configuration change.", "ops",
			query(`sum by (result) (rate(userve_pool_activations_total{`+sel+`}[$__rate_interval]))`, "activations {{result}}"),
			query(`sum by (reason) (rate(userve_pool_evictions_total{`+sel+`}[$__rate_interval]))`, "evictions {{reason}}"),
			query(`sum(rate(userve_pool_reloads_total{`+sel+`}[$__rate_interval]))`, "reloads"))).
		WithPanel(graph("Activation time", "Time to build a tenant's server, its store's indexes checked.", "s",
			query(`histogram_quantile(0.5, sum by (le) (rate(userve_pool_activation_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p50"),
			query(`histogram_quantile(0.99, sum by (le) (rate(userve_pool_activation_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p99"))).
		WithPanel(graph("Refused by the pool", "Requests the pool answered itself, by reason (unknown or ambiguous host, tenant at its bound, no seat within the queue wait, invalid configuration, failed activation, panic).", "reqps",
			query(`sum by (reason) (rate(userve_pool_rejections_total{`+sel+`}[$__rate_interval]))`, "{{reason}}"))).
		WithRow(dashboard.NewRowBuilder("Traffic, all tenants")).
		WithPanel(graph("Requests by dialect and status", "Requests a second, all tenants together.", "reqps",
			query(`sum by (dialect, code) (rate(userve_pool_requests_total{`+sel+`}[$__rate_interval]))`, "{{dialect}} {{code}}"))).
		WithPanel(graph("Request latency", "Latency quantiles by dialect, all tenants together.", "s",
			query(`histogram_quantile(0.5, sum by (le, dialect) (rate(userve_pool_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p50 {{dialect}}"),
			query(`histogram_quantile(0.99, sum by (le, dialect) (rate(userve_pool_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p99 {{dialect}}"))).
		WithPanel(graph("In flight", "Requests being served, all tenants, all replicas.", "none",
			query(`sum(userve_pool_requests_in_flight{`+sel+`})`, "in flight"))).
		WithPanel(graph("Seats", "Requests executing (seats in use) against --max-executing, and requests waiting for a seat, all replicas (docs/pools.md, Fairness).", "none",
			query(`sum(userve_pool_seats{`+sel+`})`, "seats"),
			query(`sum(userve_pool_seats_in_use{`+sel+`})`, "in use"),
			query(`sum(userve_pool_requests_queued{`+sel+`})`, "queued"))).
		WithPanel(graph("Wait for a seat", "p99 of a request's wait for a seat; requests past --queue-wait are refused (reason queue_wait).", "s",
			query(`histogram_quantile(0.99, sum by (le) (rate(userve_pool_queue_wait_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p99"))).
		WithRow(dashboard.NewRowBuilder("Busiest tenants")).
		WithPanel(graph("Busiest tenants, requests", "Requests a second of the tenants with the most requests (--metrics-top-tenants of each replica).", "reqps",
			query(`topk(10, sum by (tenant) (rate(userve_pool_tenant_requests_total{`+sel+`}[$__rate_interval])))`, "{{tenant}}"))).
		WithPanel(graph("Busiest tenants, 5xx", "Server errors a second of the busiest tenants.", "reqps",
			query(`topk(10, sum by (tenant) (rate(userve_pool_tenant_errors_total{`+sel+`}[$__rate_interval])))`, "{{tenant}}"))).
		WithPanel(graph("Busiest tenants, in flight", "Requests being served of the busiest tenants, against --tenant-max-inflight (the UservePoolTenantSaturated alert).", "none",
			query(`topk(10, sum by (tenant) (userve_pool_tenant_requests_in_flight{`+sel+`}))`, "{{tenant}}")))
}
