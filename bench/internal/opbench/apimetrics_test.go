package opbench

import (
	"net/url"
	"testing"
)

const apiserverMetrics = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="miniapp.userve.dev",resource="userservices",scope="resource",subresource="",verb="POST",version="v1alpha1"} 1000
apiserver_request_total{code="409",component="apiserver",dry_run="",group="miniapp.userve.dev",resource="userservices",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="miniapp.userve.dev",resource="userservices",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 2000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="",verb="GET",version=""} 12
apiserver_request_duration_seconds_bucket{verb="GET",le="0.1"} 5
`

func TestParseRequestTotals(t *testing.T) {
	c, err := ParseRequestTotals(apiserverMetrics)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{
		"POST miniapp.userve.dev/userservices":       1000,
		"PUT miniapp.userve.dev/userservices/status": 2007, // codes summed
		"APPLY apps/deployments":                     1000,
		"LIST configmaps":                            3,
		"GET ":                                       12,
	}
	if len(c) != len(want) {
		t.Errorf("got %v", c)
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %d, want %d", k, c[k], v)
		}
	}
	if c.Writes() != 4007 || c.Reads() != 15 || c.Total() != 4022 {
		t.Errorf("writes %d reads %d total %d", c.Writes(), c.Reads(), c.Total())
	}
}

func TestCountsArithmetic(t *testing.T) {
	before := Counts{"APPLY apps/deployments": 10, "LIST configmaps": 1}
	after := Counts{"APPLY apps/deployments": 15, "LIST configmaps": 1, "PUT coordination.k8s.io/leases": 2}
	d := after.Diff(before)
	if len(d) != 2 || d["APPLY apps/deployments"] != 5 || d["PUT coordination.k8s.io/leases"] != 2 {
		t.Errorf("diff %v", d)
	}
	ours := Counts{"APPLY apps/deployments": 7}
	if s := d.Sub(ours); s["APPLY apps/deployments"] != 0 || len(s) != 1 {
		t.Errorf("sub must floor at zero and drop it: %v", s)
	}
	if w := d.Without("coordination.k8s.io/leases"); len(w) != 1 || w["APPLY apps/deployments"] != 5 {
		t.Errorf("without %v", w)
	}
}

func TestRequestKey(t *testing.T) {
	for _, tc := range []struct {
		method, path, ctype, want string
	}{
		{"POST", "/apis/miniapp.userve.dev/v1alpha1/namespaces/t/userservices", "application/json", "POST miniapp.userve.dev/userservices"},
		{"PUT", "/apis/apps/v1/namespaces/t/deployments/d1/status", "application/json", "PUT apps/deployments/status"},
		{"GET", "/apis/apps/v1/namespaces/t/deployments?labelSelector=x", "", "LIST apps/deployments"},
		{"GET", "/apis/apps/v1/namespaces/t/deployments?watch=true&resourceVersion=5", "", "WATCH apps/deployments"},
		{"GET", "/api/v1/namespaces/t/secrets/s1", "", "GET secrets"},
		{"PATCH", "/api/v1/namespaces/t/configmaps/c1", "application/apply-patch+yaml", "APPLY configmaps"},
		{"PATCH", "/api/v1/namespaces/t/configmaps/c1", "application/merge-patch+json", "PATCH configmaps"},
		{"DELETE", "/api/v1/namespaces/t/pods", "", "DELETECOLLECTION pods"},
		{"POST", "/api/v1/namespaces", "application/json", "POST namespaces"},
		{"GET", "/api/v1/namespaces/t", "", "GET namespaces"},
		{"GET", "/metrics", "", "GET "},
	} {
		u, err := url.Parse(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := RequestKey(tc.method, u, tc.ctype); got != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestParseCounter(t *testing.T) {
	text := `# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="userservice",result="success"} 990
controller_runtime_reconcile_total{controller="userservice",result="error"} 4
controller_runtime_reconcile_total{controller="userservice",result="requeue"} 6
controller_runtime_reconcile_total_extra{controller="x"} 100
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 5000
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 1000
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 12
`
	rec := ParseCounter(text, "controller_runtime_reconcile_total", "controller")
	if rec["userservice"] != 1000 || len(rec) != 1 {
		t.Errorf("reconciles %v", rec)
	}
	m := ParseCounter(text, "rest_client_requests_total", "method")
	if m["PATCH"] != 5000 || m["POST"] != 1000 || m["GET"] != 12 {
		t.Errorf("client requests %v", m)
	}
}
