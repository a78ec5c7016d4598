//go:build tools

// Package tools pins promtool, which `make test` runs to check the chart's
// alerting rules (promtool check rules) and their unit tests (promtool test
// rules).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
