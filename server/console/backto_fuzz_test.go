package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// Whatever a form's back field holds, the answer goes to the page it
// names (the user list, the delivery log) on this site, with the note:
// never to another host, another path, or a location with a second note.
func FuzzBackTo(f *testing.F) {
	for _, seed := range []string{"", "/userve/console/users/", "/userve/console/users/?nickname=a&offset=20",
		"https://evil.example/", "//evil.example/userve/console/users/", "/userve/console/users/?x=1#frag",
		"/userve/console/users/?done=x&note=y", "/userve/console/users/..%2f..%2flogin?", "/userve/console/users/?%zz",
		"/userve/console/users/?a=\r\nLocation: http://evil", "/userve/console/users/\\\\evil"} {
		f.Add(seed)
	}
	h := &Handler{base: "/userve/console"}
	f.Fuzz(func(t *testing.T, back string) {
		for _, page := range []string{h.base + "/users/", h.base + "/deliveries/"} {
			w := httptest.NewRecorder()
			h.backTo(w, httptest.NewRequest(http.MethodPost, page, nil), back, page, "note", "members_none")
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status %d", w.Code)
			}
			loc := w.Header().Get("Location")
			u, err := url.Parse(loc)
			if err != nil || u.Scheme != "" || u.Host != "" || u.Path != page || u.Fragment != "" {
				t.Fatalf("back %q led to %q", back, loc)
			}
			q := u.Query()
			if len(q["note"]) != 1 || q.Get("note") != "members_none" || len(q["done"]) != 0 {
				t.Fatalf("back %q led to %q", back, loc)
			}
		}
	})
}
