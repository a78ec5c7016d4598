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
	back := h.listReturn(r.PostFormValue("back"))
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
	switch {
	case len(users) == 0:
		h.listNote(w, r, back, "error", "members_none")
		return
	case len(users) > maxBatchUsers:
		h.listNote(w, r, back, "error", "members_too_many")
		return
	case !ok:
		h.listNote(w, r, back, "error", "members_no_group")
		return
	case op != "add" && op != "remove":
		h.listNote(w, r, back, "error", "members_bad_op")
		return
	}
	ans := h.call(r, v, http.MethodPatch, "/v1/miniapp/group/membership/",
		[]map[string]any{{"op": op, "path": "/membership", "users": users, "groups": []int64{group}}})
	if !ans.OK() {
		v.Error = ans.Message()
		h.fail(w, r, v, ans.Status, ans.Message())
		return
	}
	h.listNote(w, r, back, "done", "members_"+op)
}

// listReturn is the user list URL a batch came from (its filters and
// page), or the plain list.
func (h *Handler) listReturn(back string) string {
	if strings.HasPrefix(back, h.base+"/users/?") || back == h.base+"/users/" {
		return h.next(back)
	}
	return h.base + "/users/"
}

// listNote goes back to the list with a note: ?done=key or ?note=key
// (an error note, shown as such).
func (h *Handler) listNote(w http.ResponseWriter, r *http.Request, back, kind, key string) {
	u, err := url.Parse(back)
	if err != nil {
		u = &url.URL{Path: h.base + "/users/"}
	}
	q := u.Query()
	q.Del("done")
	q.Del("note")
	if kind == "done" {
		q.Set("done", key)
	} else {
		q.Set("note", key)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
