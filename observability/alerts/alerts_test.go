package alerts_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"userve.dev/userve/observability/alerts"
	"userve.dev/userve/test/testbin"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	path, err := testbin.Path("promtool")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = root(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// promtool check rules: the file parses, every expression is valid PromQL,
// and the linter finds nothing.
func TestPromtoolCheckRules(t *testing.T) {
	out := promtool(t, "check", "rules", "--lint=all", "--lint-fatal", alerts.RulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
}

// promtool test rules: every alert fires on the series meant to fire it,
// with the expected labels and annotations, and stays silent otherwise.
func TestPromtoolTestRules(t *testing.T) {
	out := promtool(t, "test", "rules", filepath.Join("observability", "alerts", "testdata", "userve.rules.test.yaml"))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// Every alert has a firing and a silent case in the promtool tests, a
// severity, and a runbook_url naming a section of docs/runbooks.md.
func TestEveryAlertIsTestedAndHasARunbook(t *testing.T) {
	groups, err := alerts.Load(root(t))
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	data, err := os.ReadFile(filepath.Join(root(t), "observability", "alerts", "testdata", "userve.rules.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	runbooks, err := os.ReadFile(filepath.Join(root(t), "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^##+ (.+)$`).FindAllStringSubmatch(string(runbooks), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	const base = "https://github.com/userve/userve/blob/main/docs/runbooks.md#"
	n := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			n++
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("%s: promtool tests must make it fire (%v) and stay silent (%v)", r.Alert, fires[r.Alert], silent[r.Alert])
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			url := r.Annotations["runbook_url"]
			if !strings.HasPrefix(url, base) || !anchors[strings.TrimPrefix(url, base)] {
				t.Errorf("%s: runbook_url %q names no section of docs/runbooks.md", r.Alert, url)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
		}
	}
	if n < 7 {
		t.Errorf("only %d alerts", n)
	}
}

// githubAnchor is the fragment GitHub gives a heading.
func githubAnchor(heading string) string {
	h := strings.ToLower(strings.TrimSpace(heading))
	h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}
