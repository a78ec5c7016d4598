package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Operator is the operator's dashboard: tenants by phase, reconciles, the
// work queue and the Kubernetes API requests of the operator selected by
// its Prometheus job.
func Operator() *dashboard.DashboardBuilder {
	const op = `job="$job"`
	const ctl = `job="$job", controller="userservice"`
	return base("userve-operator", "userve / Operator", "operator").
		Description("The userve operator: UserServices by phase, reconciles, work queue and Kubernetes API traffic.").
		WithVariable(datasourceVariable()).
		WithVariable(queryVariable("job", "Operator", `label_values(userve_tenants, job)`)).
		WithRow(dashboard.NewRowBuilder("Tenants")).
		WithPanel(single("Tenants", "UserServices the operator manages.", "none",
			query(`sum(max by (phase) (userve_tenants{`+op+`}))`, "tenants"))).
		WithPanel(single("Ready", "UserServices in phase Ready.", "none",
			query(`max(userve_tenants{`+op+`, phase="Ready"})`, "Ready"))).
		WithPanel(single("Degraded", "UserServices in phase Degraded.", "none",
			query(`max(userve_tenants{`+op+`, phase="Degraded"})`, "Degraded"))).
		WithPanel(single("Not Ready", "UserServices whose Ready condition is not True (what the UserveTenantNotReady alert watches).", "none",
			query(`count(max by (namespace, tenant) (userve_tenant_ready{`+op+`}) == 0) or vector(0)`, "not Ready"))).
		WithPanel(graph("Tenants by phase", "userve_tenants by status.phase (each replica reports the same numbers; the panel takes the highest).", "none",
			query(`max by (phase) (userve_tenants{`+op+`})`, "{{phase}}")).Span(24)).
		WithRow(dashboard.NewRowBuilder("Reconciles")).
		WithPanel(graph("Reconciles by result", "controller-runtime reconciles of the userservice controller.", "ops",
			query(`sum by (result) (rate(controller_runtime_reconcile_total{`+ctl+`}[$__rate_interval]))`, "{{result}}"))).
		WithPanel(graph("Reconcile errors", "Reconciles that returned an error (the UserveOperatorReconcileErrors alert).", "ops",
			query(`sum(rate(controller_runtime_reconcile_errors_total{`+ctl+`}[$__rate_interval]))`, "errors"),
			query(`sum(rate(controller_runtime_terminal_reconcile_errors_total{`+ctl+`}[$__rate_interval]))`, "terminal"))).
		WithPanel(graph("Reconcile duration", "Time one reconcile takes.", "s",
			query(`histogram_quantile(0.5, sum by (le) (rate(controller_runtime_reconcile_time_seconds_bucket{`+ctl+`}[$__rate_interval])))`, "p50"),
			query(`histogram_quantile(0.99, sum by (le) (rate(controller_runtime_reconcile_time_seconds_bucket{`+ctl+`}[$__rate_interval])))`, "p99"))).
		WithRow(dashboard.NewRowBuilder("Work queue")).
		WithPanel(graph("Queue depth", "UserServices waiting to be reconciled (the UserveOperatorWorkqueueGrowing alert).", "none",
			query(`sum(workqueue_depth{`+ctl+`})`, "depth"))).
		WithPanel(graph("Queue wait", "Time a UserService waits in the queue before a worker takes it.", "s",
			query(`histogram_quantile(0.5, sum by (le) (rate(workqueue_queue_duration_seconds_bucket{`+ctl+`}[$__rate_interval])))`, "p50"),
			query(`histogram_quantile(0.99, sum by (le) (rate(workqueue_queue_duration_seconds_bucket{`+ctl+`}[$__rate_interval])))`, "p99"))).
		WithPanel(graph("Adds and retries", "Items added to the queue, and retries after an error or a requeue.", "ops",
			query(`sum(rate(workqueue_adds_total{`+ctl+`}[$__rate_interval]))`, "adds"),
			query(`sum(rate(workqueue_retries_total{`+ctl+`}[$__rate_interval]))`, "retries"))).
		WithRow(dashboard.NewRowBuilder("Kubernetes API and process")).
		WithPanel(graph("API requests by code", "Requests of the operator to the kube-apiserver, by method and HTTP code.", "reqps",
			query(`sum by (method, code) (rate(rest_client_requests_total{`+op+`}[$__rate_interval]))`, "{{method}} {{code}}"))).
		WithPanel(graph("Memory", "Resident memory of each operator replica.", "bytes",
			query(`process_resident_memory_bytes{`+op+`}`, "{{pod}}"))).
		WithPanel(graph("CPU", "CPU used by each operator replica.", "percentunit",
			query(`rate(process_cpu_seconds_total{`+op+`}[$__rate_interval])`, "{{pod}}")))
}

// Tenants is the tenants' dashboard for one tenant (namespace and tenant
// variables): traffic, latency, errors, logins, codes and wallet.
func Tenants() *dashboard.DashboardBuilder {
	const sel = `namespace="$namespace", tenant="$tenant"`
	return base("userve-tenants", "userve / Tenant", "tenants").
		Description("One userve tenant server (all its replicas): traffic, latency, errors, logins, verification codes and wallet.").
		WithVariable(datasourceVariable()).
		WithVariable(queryVariable("namespace", "Namespace", `label_values(userve_http_requests_total, namespace)`)).
		WithVariable(queryVariable("tenant", "Tenant", `label_values(userve_http_requests_total{namespace="$namespace"}, tenant)`)).
		WithRow(dashboard.NewRowBuilder("Overview")).
		WithPanel(single("Requests", "Requests a second, every route.", "reqps",
			query(`sum(rate(userve_http_requests_total{`+sel+`}[$__rate_interval]))`, "requests"))).
		WithPanel(single("5xx ratio", "Share of requests answered with a server error (the UserveTenantHighErrorRate alert).", "percentunit",
			query(`sum(rate(userve_http_requests_total{`+sel+`, code=~"5.."}[$__rate_interval])) / sum(rate(userve_http_requests_total{`+sel+`}[$__rate_interval]))`, "5xx"))).
		WithPanel(single("p95 latency", "95th percentile of request latency, every route.", "s",
			query(`histogram_quantile(0.95, sum by (le) (rate(userve_http_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p95"))).
		WithPanel(single("Ready", "The UserService's Ready condition, from the operator (1 Ready, 0 not).", "none",
			query(`max(userve_tenant_ready{`+sel+`})`, "ready"))).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(graph("Requests by route", "Requests a second by route template (never a raw path).", "reqps",
			query(`sum by (method, route) (rate(userve_http_requests_total{`+sel+`}[$__rate_interval]))`, "{{method}} {{route}}"))).
		WithPanel(graph("Responses by status", "Requests a second by HTTP status code.", "reqps",
			query(`sum by (code) (rate(userve_http_requests_total{`+sel+`}[$__rate_interval]))`, "{{code}}"))).
		WithPanel(graph("In flight", "Requests being served, all replicas.", "none",
			query(`sum(userve_http_requests_in_flight{`+sel+`})`, "in flight"))).
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(graph("Latency", "Request latency quantiles, every route.", "s",
			query(`histogram_quantile(0.5, sum by (le) (rate(userve_http_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p50"),
			query(`histogram_quantile(0.95, sum by (le) (rate(userve_http_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p95"),
			query(`histogram_quantile(0.99, sum by (le) (rate(userve_http_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "p99"))).
		WithPanel(graph("p95 latency by route", "95th percentile by route template.", "s",
			query(`histogram_quantile(0.95, sum by (le, route) (rate(userve_http_request_duration_seconds_bucket{`+sel+`}[$__rate_interval])))`, "{{route}}")).Span(16)).
		WithRow(dashboard.NewRowBuilder("Errors")).
		WithPanel(graph("5xx by route", "Server errors a second by route template.", "reqps",
			query(`sum by (route, code) (rate(userve_http_requests_total{`+sel+`, code=~"5.."}[$__rate_interval]))`, "{{code}} {{route}}"))).
		WithPanel(graph("Store errors", "Store calls that failed: unavailable and not_ready answered 503 (the UserveStoreUnavailable alert), internal answered 500.", "ops",
			query(`sum by (kind) (rate(userve_store_errors_total{`+sel+`}[$__rate_interval]))`, "{{kind}}"))).
		WithPanel(graph("4xx by status", "Client errors a second by status code.", "reqps",
			query(`sum by (code) (rate(userve_http_requests_total{`+sel+`, code=~"4.."}[$__rate_interval]))`, "{{code}}"))).
		WithRow(dashboard.NewRowBuilder("Logins")).
		WithPanel(graph("Successful logins", "POST /api/v2/auth/login answered 200.", "ops",
			query(`sum(rate(userve_http_requests_total{`+sel+`, route="/api/v2/auth/login", code="200"}[$__rate_interval]))`, "logins"))).
		WithPanel(graph("Login failures", "Logins refused for a wrong password or code, by method.", "ops",
			query(`sum by (method) (rate(userve_login_failures_total{`+sel+`}[$__rate_interval]))`, "{{method}}"))).
		WithPanel(graph("Throttled (429)", "Login and password attempts refused because the account or address budget ran out (the UserveLoginBruteForce alert).", "ops",
			query(`sum by (kind) (rate(userve_login_throttled_total{`+sel+`}[$__rate_interval]))`, "{{kind}}"))).
		WithRow(dashboard.NewRowBuilder("Verification codes")).
		WithPanel(graph("Codes sent", "Codes handed to the SMS webhook or SMTP server, by channel.", "ops",
			query(`sum by (channel) (rate(userve_codes_sent_total{`+sel+`}[$__rate_interval]))`, "{{channel}}"))).
		WithPanel(graph("Delivery failures", "Codes whose delivery failed, by channel (the UserveCodeDeliveryFailing alert).", "ops",
			query(`sum by (channel) (rate(userve_code_delivery_failures_total{`+sel+`}[$__rate_interval]))`, "{{channel}}"))).
		WithPanel(graph("Delivery failure ratio", "Share of codes that failed, by channel.", "percentunit",
			query(`sum by (channel) (rate(userve_code_delivery_failures_total{`+sel+`}[$__rate_interval])) / (sum by (channel) (rate(userve_code_delivery_failures_total{`+sel+`}[$__rate_interval])) + sum by (channel) (rate(userve_codes_sent_total{`+sel+`}[$__rate_interval])))`, "{{channel}}"))).
		WithRow(dashboard.NewRowBuilder("Wallet")).
		WithPanel(graph("Wallet operations", "Transfers, credits and debits that moved money.", "ops",
			query(`sum by (operation) (rate(userve_wallet_operations_total{`+sel+`, result="ok"}[$__rate_interval]))`, "{{operation}}"))).
		WithPanel(graph("Wallet outcomes", "Every wallet operation by result: ok, replayed (same idempotency key), rejected, conflict, error.", "ops",
			query(`sum by (operation, result) (rate(userve_wallet_operations_total{`+sel+`}[$__rate_interval]))`, "{{operation}} {{result}}"))).
		WithPanel(graph("Memory", "Resident memory of each replica.", "bytes",
			query(`process_resident_memory_bytes{`+sel+`}`, "{{pod}}")))
}
