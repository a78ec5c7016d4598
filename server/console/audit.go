package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/openapi"
)

// The audit log page (GET audit/): the API's audit log (GET /v1/audit/)
// with the form's filters (admin, action, user, time range in UTC),
// newest first, a page at a time, each entry with where the admin acted
// (api or console) and the fields it changed. Read-only: the API has no
// route that changes an entry.

// auditLimits are the page sizes offered.
var auditLimits = []int64{50, 100, 200}

// formTimeLayout is how a form's datetime-local input sends a time.
const formTimeLayout = "2006-01-02T15:04"

type auditData struct {
	Q          url.Values
	Entries    []map[string]any
	Actions    []string // every action an entry may name, for the filter's suggestions
	Limits     []int64
	Limit      int64
	From, To   int64
	Prev, Next string
	Problems   []string
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	d := &auditData{Q: q, Actions: auditActions(), Limits: auditLimits, Limit: auditLimits[0]}
	v.Title, v.Data = v.Lang.T("audit_title"), d
	var offset int64
	var params url.Values
	d.Limit, offset, params = paging(q, d.Limit)
	for _, k := range []string{"admin", "action"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			params.Set(k, s)
		}
	}
	if s := strings.TrimSpace(q.Get("user_id")); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err != nil || n < 1 {
			d.Problems = append(d.Problems, v.Lang.Tf("err_not_integer", v.Lang.T("f_user_id"), s))
		} else {
			params.Set("user_id", s)
		}
	}
	d.Problems = append(d.Problems, timeRange(q, params, v.Lang)...)
	if len(d.Problems) > 0 {
		h.render(w, http.StatusBadRequest, "audit", v)
		return
	}
	ans := h.call(r, v, http.MethodGet, "/v1/audit/?"+params.Encode(), nil)
	if !ans.OK() {
		v.Error = ans.Message()
		h.render(w, ans.Status, "audit", v)
		return
	}
	d.Entries, _ = ans.List()
	meta, _ := ans.Object()["meta"].(map[string]any)
	if len(d.Entries) > 0 {
		d.From, d.To = offset+1, offset+int64(len(d.Entries))
	}
	page := func(off int64) string { return withOffset(h.base+"/audit/", q, off) }
	if offset > 0 {
		d.Prev = page(max(offset-d.Limit, 0))
	}
	if next, _ := meta["next"].(string); next != "" {
		d.Next = page(offset + d.Limit)
	}
	h.render(w, http.StatusOK, "audit", v)
}

// paging reads a list page's ?limit (1..1000, else def) and ?offset into
// the API query that asks for that page.
func paging(q url.Values, def int64) (limit, offset int64, params url.Values) {
	limit = def
	if n, err := strconv.ParseInt(q.Get("limit"), 10, 64); err == nil && n >= 1 && n <= 1000 {
		limit = n
	}
	offset, _ = strconv.ParseInt(q.Get("offset"), 10, 64)
	offset = max(offset, 0)
	params = url.Values{"limit": {itoa(limit)}}
	if offset > 0 {
		params.Set("offset", itoa(offset))
	}
	return limit, offset, params
}

// withOffset is path with the query q at another offset (a pager link).
func withOffset(path string, q url.Values, offset int64) string {
	p := url.Values{}
	for k, vs := range q {
		p[k] = vs
	}
	p.Set("offset", itoa(offset))
	return path + "?" + p.Encode()
}

// timeRange puts the form's from and to (UTC; a datetime-local input's
// "2006-01-02T15:04", with or without seconds, or a day) into params as
// the API's since and until, or says what is wrong with them. The API's
// until is exclusive: the whole day, minute or second typed is included.
func timeRange(q, params url.Values, l lang) (problems []string) {
	for k, param := range map[string]string{"from": "since", "to": "until"} {
		s := strings.TrimSpace(q.Get(k))
		if s == "" {
			continue
		}
		t, step, ok := parseFormTime(s)
		if !ok {
			problems = append(problems, l.Tf("err_not_datetime", l.T("range_"+k), s))
			continue
		}
		if k == "to" {
			t = t.Add(step)
		}
		params.Set(param, itoa(t.Unix()))
	}
	sort.Strings(problems) // a stable page
	return problems
}

// parseFormTime reads a form's time in UTC and the span it names.
func parseFormTime(s string) (time.Time, time.Duration, bool) {
	for _, f := range []struct {
		layout string
		step   time.Duration
	}{{formTimeLayout, time.Minute}, {formTimeLayout + ":05", time.Second}, {time.DateOnly, 24 * time.Hour}} {
		if t, err := time.Parse(f.layout, s); err == nil {
			return t, f.step, true
		}
	}
	return time.Time{}, 0, false
}

// auditActions are the management operations and the console's own
// entries, sorted.
func auditActions() []string {
	seen := map[string]bool{"consoleLogin": true, "consoleLogout": true}
	for route, id := range openapi.ManagementOperationIDs() {
		if !strings.HasPrefix(route, http.MethodGet+" ") || strings.HasSuffix(route, "/export/users/") {
			seen[id] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
