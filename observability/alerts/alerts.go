// Package alerts reads userve's alerting rules from their one source,
// charts/userve/files/alerts/userve.rules.yaml: the chart renders that file
// into its PrometheusRule, promtool checks and unit-tests it (alerts_test.go),
// and the observability tests check the metrics it names.
package alerts

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// RulesFile is the rule file's path under the repository root.
var RulesFile = filepath.Join("charts", "userve", "files", "alerts", "userve.rules.yaml")

// Rule is one alerting rule, in Prometheus' rule file format.
type Rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Group is a rule group.
type Group struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// Load reads the rule groups under the repository root, strictly: an
// unknown key is an error.
func Load(root string) ([]Group, error) {
	data, err := os.ReadFile(filepath.Join(root, RulesFile))
	if err != nil {
		return nil, err
	}
	var file struct {
		Groups []Group `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", RulesFile, err)
	}
	return file.Groups, nil
}
