package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The audit log page (GET audit/): the API's audit log with its filters
// (admin, action, user, time range), newest first, a page at a time.

type auditData struct {
	Q          url.Values
	Entries    []map[string]any
	Prev, Next string
	Problems   []string
}

// auditLimit is the audit page's size.
const auditLimit = 50

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	d := &auditData{Q: q}
	v.Title, v.Data = v.Lang.T("audit_title"), d
	params := url.Values{"limit": {itoa(auditLimit)}}
	for _, k := range []string{"admin", "action"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			params.Set(k, s)
		}
	}
	if s := strings.TrimSpace(q.Get("user_id")); s != "" {
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			d.Problems = append(d.Problems, v.Lang.Tf("err_not_integer", v.Lang.T("f_user_id"), s))
		}
		params.Set("user_id", s)
	}
	for k, param := range map[string]string{"from": "since", "to": "until"} {
		s := strings.TrimSpace(q.Get(k))
		if s == "" {
			continue
		}
		day, err := time.Parse(time.DateOnly, s)
		if err != nil {
			d.Problems = append(d.Problems, v.Lang.Tf("err_not_date", v.Lang.T("audit_"+k), s))
			continue
		}
		if k == "to" {
			day = day.AddDate(0, 0, 1) // until the end of that day
		}
		params.Set(param, itoa(day.Unix()))
	}
	if len(d.Problems) > 0 {
		h.render(w, http.StatusBadRequest, "audit", v)
		return
	}
	offset, _ := strconv.ParseInt(q.Get("offset"), 10, 64)
	offset = max(offset, 0)
	params.Set("offset", itoa(offset))
	ans := h.call(r, v, http.MethodGet, "/v1/audit/?"+params.Encode(), nil)
	if !ans.OK() {
		v.Error = ans.Message()
		h.render(w, ans.Status, "audit", v)
		return
	}
	d.Entries, _ = ans.List()
	page := func(off int64) string {
		p := url.Values{}
		for k, vs := range q {
			p[k] = vs
		}
		p.Set("offset", itoa(off))
		return h.base + "/audit/?" + p.Encode()
	}
	if offset > 0 {
		d.Prev = page(max(offset-auditLimit, 0))
	}
	if meta, _ := ans.Object()["meta"].(map[string]any); meta["next"] != nil {
		d.Next = page(offset + auditLimit)
	}
	h.render(w, http.StatusOK, "audit", v)
}
