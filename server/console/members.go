package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Batch membership from the user list (POST users/membership): the users
// ticked on the list are added to, or removed from, the group picked
// below it, in one PATCH /v1/miniapp/group/membership/ (all or nothing:
// the API checks every user and group before changing any).

// maxBatchUsers is the most users one batch names (the API's bound on a
// membership request).
const maxBatchUsers = 1000

func (h *Handler) batchMembership(w http.ResponseWriter, r *http.Request, v *view) {
	_ = r.ParseForm()
	var users []int64
	for _, s := range r.PostForm["user"] {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			continue
		}
		users = append(users, id)
	}
	op := r.PostFormValue("op")
	group, ok := formGroupID(r, "group")
	list := func(key, value string) { h.backTo(w, r, r.PostFormValue("back"), h.base+"/users/", key, value) }
	switch {
	case len(users) == 0:
		list("note", "members_none")
		return
	case len(users) > maxBatchUsers:
		list("note", "members_too_many")
		return
	case !ok:
		list("note", "members_no_group")
		return
	case op != "add" && op != "remove":
		list("note", "members_bad_op")
		return
	}
	ans := h.call(r, v, http.MethodPatch, "/v1/miniapp/group/membership/",
		[]map[string]any{{"op": op, "path": "/membership", "users": users, "groups": []int64{group}}})
	if !ans.OK() {
		h.fail(w, r, v, ans.Status, ans.Message())
		return
	}
	list("done", "members_"+op)
}

// backTo answers a 303 to the console page back names when it is page
// itself or page with a query (the list a form came from, its filters
// kept), else to page; the query gets key=value (a note) in place of any
// earlier note.
func (h *Handler) backTo(w http.ResponseWriter, r *http.Request, back, page, key, value string) {
	u := &url.URL{Path: page}
	if back == page || strings.HasPrefix(back, page+"?") {
		if parsed, err := url.Parse(h.next(back)); err == nil && parsed.Path == page {
			u.RawQuery = parsed.RawQuery
		}
	}
	q := u.Query()
	q.Del("done")
	q.Del("note")
	q.Set(key, value)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
