package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"userve.dev/userve/server/store"
)

// view is what every page's template gets: the layout's parts and the
// page's own Data.
type view struct {
	Lang  lang
	Base  string // the console's path, e.g. /userve/console
	Here  string // this page's path and query (the language switch returns here)
	Admin string // the signed-in admin's token name; "" on the login page
	CSRF  string // the session's CSRF token, for every form that changes something
	Nav   []navItem
	Title string
	Flash string // what the last action did
	Error string // why it did not
	Data  any
}

// navItem is an entry of the menu; a page with one is reachable from
// every page.
type navItem struct {
	Key, Path string // a message key, a path under Base
	Current   bool
}

// menu is the console's navigation, in order (docs/console.md, "Adding a
// page").
var menu = []navItem{{Key: "nav_users", Path: "/users/"}, {Key: "nav_audit", Path: "/audit/"}}

func (h *Handler) newView(r *http.Request, cs *store.ConsoleSession) *view {
	v := &view{Lang: requestLang(r), Base: h.base, Here: r.URL.RequestURI()}
	if cs != nil {
		v.Admin, v.CSRF = cs.Admin, cs.CSRF
		for _, m := range menu {
			m.Current = strings.HasPrefix(r.URL.Path, h.base+m.Path)
			v.Nav = append(v.Nav, m)
		}
	}
	if done := r.URL.Query().Get("done"); done != "" {
		if msg, ok := messages[v.Lang]["done_"+done]; ok {
			v.Flash = msg
		}
	}
	return v
}

// pages are the parsed templates, shared by every console of the process
// (a pool builds a server, so a console, per tenant).
var pages = sync.OnceValue(parsePages)

// parsePages parses every template under templates/, each with the layout.
func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		pages[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", name))
	}
	return pages
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"unix": func(v any) string { // unix seconds as UTC time
		n, ok := toInt(v)
		if !ok || n == 0 {
			return ""
		}
		return time.Unix(n, 0).UTC().Format("2006-01-02 15:04:05")
	},
	"str":  func(v any) string { return display(v) },
	"list": func(items ...string) []string { return items },
}

// render writes page with v, or a 500 naming nothing (the log has it).
func (h *Handler) render(w http.ResponseWriter, status int, page string, v *view) {
	t, ok := h.pages[page]
	if !ok {
		panic("console: no template " + page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.o.Log.Error("console: rendering a page failed", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page: msg is a message key, or the API's own words.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, v *view, status int, msg string) {
	if v == nil {
		v = h.newView(r, nil)
	}
	v.Title = v.Lang.T("error_title")
	v.Error = v.Lang.T(msg)
	h.render(w, status, "error", v)
}

// display is a profile value as one line of text.
func display(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool, int64, float64, int:
		return fmt.Sprint(t)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

func toInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case float64:
		return int64(t), true
	case int:
		return int64(t), true
	}
	return 0, false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
