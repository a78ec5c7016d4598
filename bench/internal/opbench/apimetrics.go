package opbench

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Counts are API requests keyed "VERB group/resource[/subresource]" (the
// core group is written without a prefix: "PUT configmaps").
type Counts map[string]int

// Diff is c minus base, dropping zeros.
func (c Counts) Diff(base Counts) Counts {
	out := Counts{}
	for k, v := range c {
		if d := v - base[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Sub removes other's counts (never below zero: a request of ours may not
// have reached the server's counter yet).
func (c Counts) Sub(other Counts) Counts {
	out := Counts{}
	for k, v := range c {
		if d := v - other[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Without drops keys whose resource part matches one of resources.
func (c Counts) Without(resources ...string) Counts {
	out := Counts{}
	for k, v := range c {
		_, res, _ := strings.Cut(k, " ")
		drop := false
		for _, r := range resources {
			if res == r || strings.HasPrefix(res, r+"/") {
				drop = true
			}
		}
		if !drop {
			out[k] = v
		}
	}
	return out
}

// Writes and Reads total the write verbs (POST, PUT, PATCH, APPLY, DELETE,
// DELETECOLLECTION) and the others (GET, LIST, WATCH).
func (c Counts) Writes() int { return c.sum(isWrite) }

// Reads is every request that is not a write.
func (c Counts) Reads() int { return c.sum(func(v string) bool { return !isWrite(v) }) }

// Total of every request.
func (c Counts) Total() int { return c.sum(func(string) bool { return true }) }

func (c Counts) sum(match func(verb string) bool) int {
	n := 0
	for k, v := range c {
		verb, _, _ := strings.Cut(k, " ")
		if match(verb) {
			n += v
		}
	}
	return n
}

func isWrite(verb string) bool {
	switch verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE":
		return true
	}
	return false
}

// ParseRequestTotals sums apiserver_request_total from the API server's
// /metrics text by verb and resource (over codes, scopes, versions, ...).
func ParseRequestTotals(text string) (Counts, error) {
	out := Counts{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, err := splitSample(line[len("apiserver_request_total"):])
		if err != nil {
			return nil, err
		}
		out[key(labels["verb"], labels["group"], labels["resource"], labels["subresource"])] += int(value)
	}
	return out, sc.Err()
}

// ParseCounter sums a counter family's samples by one label.
func ParseCounter(text, family, label string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, family)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels, value, err := splitSample(rest)
		if err != nil {
			continue
		}
		out[labels[label]] += value
	}
	return out
}

// splitSample parses `{a="x",b="y"} 12` into labels and the value.
func splitSample(s string) (map[string]string, float64, error) {
	labels := map[string]string{}
	if strings.HasPrefix(s, "{") {
		end := strings.LastIndexByte(s, '}')
		if end < 0 {
			return nil, 0, fmt.Errorf("metrics: unterminated labels in %q", s)
		}
		body := s[1:end]
		s = s[end+1:]
		for body != "" {
			name, rest, ok := strings.Cut(body, "=\"")
			if !ok {
				return nil, 0, fmt.Errorf("metrics: bad label in %q", body)
			}
			var val strings.Builder
			i := 0
			for ; i < len(rest); i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[i])
					}
					continue
				}
				if rest[i] == '"' {
					break
				}
				val.WriteByte(rest[i])
			}
			labels[strings.TrimSpace(name)] = val.String()
			body = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
		}
	}
	fields := strings.Fields(s)
	if len(fields) < 1 {
		return nil, 0, fmt.Errorf("metrics: no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	return labels, v, err
}

func key(verb, group, resource, subresource string) string {
	r := resource
	if group != "" {
		r = group + "/" + resource
	}
	if subresource != "" {
		r += "/" + subresource
	}
	return verb + " " + r
}

// ---- the harness's own requests --------------------------------------------

// Counter counts the requests a client sends, keyed as the API server's
// apiserver_request_total would key them, so the harness can take its own
// share out of the server's totals.
type Counter struct {
	mu     sync.Mutex
	counts Counts
}

// NewCounter is an empty counter.
func NewCounter() *Counter { return &Counter{counts: Counts{}} }

// Snapshot copies the counts.
func (c *Counter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(Counts, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Wrap is a rest.Config WrapTransport.
func (c *Counter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		k := RequestKey(req.Method, req.URL, req.Header.Get("Content-Type"))
		c.mu.Lock()
		c.counts[k]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// RequestKey maps an HTTP request to the API server's verb and resource:
// GET on a collection is LIST (WATCH with watch=true), PATCH with an
// apply-patch body is APPLY, DELETE on a collection is DELETECOLLECTION.
func RequestKey(method string, u *url.URL, contentType string) string {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	var group string
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:] // api/v1/...
	case len(parts) >= 3 && parts[0] == "apis":
		group, rest = parts[1], parts[3:] // apis/group/version/...
	default:
		return method + " " // a non-resource URL (/metrics, /healthz, ...)
	}
	if len(rest) >= 2 && rest[0] == "namespaces" {
		if len(rest) == 2 { // the namespace object itself
			rest = []string{"namespaces", rest[1]}
		} else {
			rest = rest[2:]
		}
	}
	var resource, name, sub string
	if len(rest) > 0 {
		resource = rest[0]
	}
	if len(rest) > 1 {
		name = rest[1]
	}
	if len(rest) > 2 {
		sub = rest[2]
	}
	verb := method
	switch method {
	case http.MethodGet:
		switch {
		case u.Query().Get("watch") == "true" || u.Query().Get("watch") == "1":
			verb = "WATCH"
		case name == "":
			verb = "LIST"
		}
	case http.MethodPatch:
		if strings.HasPrefix(contentType, "application/apply-patch") {
			verb = "APPLY"
		}
	case http.MethodDelete:
		if name == "" {
			verb = "DELETECOLLECTION"
		}
	}
	return key(verb, group, resource, sub)
}
