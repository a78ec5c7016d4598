// Package observability holds what lets a platform team watch userve: the
// alerting rules (observability/alerts, over the chart's rule file) and the
// Grafana dashboards (observability/dashboards, generated into the chart).
// Its tests check that every metric the alerts and dashboards name is one
// that a real tenant server or a real operator exports on /metrics.
package observability
