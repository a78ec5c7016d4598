package dashboards_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"userve.dev/userve/observability/dashboards"
	"userve.dev/userve/test/testbin"
)

// The committed JSON is what the Go code builds: run `make generate` after
// changing a dashboard.
func TestCommittedDashboardsAreCurrent(t *testing.T) {
	root, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	files, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := filepath.Glob(filepath.Join(root, dashboards.Dir, "*.json"))
	var names []string
	for _, p := range committed {
		names = append(names, filepath.Base(p))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, dashboards.Dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/%s is stale or missing (run `make generate`): %v", dashboards.Dir, name, err)
		}
		names = slices.DeleteFunc(names, func(n string) bool { return n == name })
	}
	if len(names) > 0 {
		t.Errorf("%s holds dashboards the code does not build: %v", dashboards.Dir, names)
	}
}

// Each dashboard has a stable uid, its variables, and panels whose every
// query names the datasource variable.
func TestDashboardsShape(t *testing.T) {
	files, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"userve-operator.json": {"datasource", "job"},
		"userve-tenants.json":  {"datasource", "namespace", "tenant"},
		"userve-pools.json":    {"datasource", "namespace", "job"},
	}
	for name, vars := range want {
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct {
					Name string `json:"name"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Type       string `json:"type"`
				Title      string `json:"title"`
				Datasource *struct {
					UID string `json:"uid"`
				} `json:"datasource"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(files[name], &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.UID != strings.TrimSuffix(name, ".json") {
			t.Errorf("%s: uid %q", name, d.UID)
		}
		var got []string
		for _, v := range d.Templating.List {
			got = append(got, v.Name)
		}
		if !slices.Equal(got, vars) {
			t.Errorf("%s: variables %v, want %v", name, got, vars)
		}
		panels := 0
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			panels++
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query on ${datasource}", name, p.Title)
			}
			for _, q := range p.Targets {
				for _, v := range vars[1:] {
					if !strings.Contains(q.Expr, "$"+v) {
						t.Errorf("%s: panel %q ignores $%s: %s", name, p.Title, v, q.Expr)
					}
				}
			}
		}
		if panels < 10 {
			t.Errorf("%s: only %d panels", name, panels)
		}
	}
}
