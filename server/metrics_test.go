package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricValue scrapes base/metrics and returns the value of the one series
// of name whose labels are exactly the given name/value pairs.
func metricValue(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range families[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(want)
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("/metrics has no %s%v", name, want)
	return 0
}

// A client inventing methods must not invent series: 30 parallel requests
// with 30 made-up methods add one "other" series, not 30.
func TestMadeUpMethodsShareOneSeries(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(fmt.Sprintf("BREW%02d", i), e.srv.URL+"/anything/"+strconv.Itoa(i), nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
		}()
	}
	wg.Wait()
	if got := metricValue(t, e.metrics.URL, "userve_http_requests_total", "method", "other", "route", "unmatched", "code", "404"); got != 30 {
		t.Errorf("made-up methods counted %v times under method=other, want 30", got)
	}
	res, err := http.Get(e.metrics.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if strings.Contains(string(body), "BREW") || strings.Contains(string(body), "/anything/") {
		t.Error("/metrics names a made-up method or a raw path")
	}
}
