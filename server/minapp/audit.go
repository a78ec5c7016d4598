package minapp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// maxAuditFilter bounds the admin and action filters (names are at most 64).
const maxAuditFilter = 64

// ParseAuditQuery validates GET /v1/audit/'s parameters.
func ParseAuditQuery(q url.Values, lim Limits) (store.AuditQuery, error) {
	var aq store.AuditQuery
	var lq ListQuery
	for _, name := range sortedKeys(q) {
		values := q[name]
		if len(values) != 1 {
			return aq, paramErr(name, "given %d times; give it once", len(values))
		}
		v := values[0]
		if v == "" {
			return aq, paramErr(name, "empty value")
		}
		switch name {
		case "limit", "offset":
			if err := parsePaging(&lq, name, v, lim); err != nil {
				return aq, err
			}
		case "admin", "action":
			if len(v) > maxAuditFilter {
				return aq, paramErr(name, "longer than %d bytes", maxAuditFilter)
			}
			if name == "admin" {
				aq.Admin = v
			} else {
				aq.Action = v
			}
		case "user_id":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 1 {
				return aq, paramErr(name, "%q is not a user id (a positive integer)", v)
			}
			aq.UserID = id
		case "since", "until":
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil || sec < 0 || sec > maxUnixSeconds {
				return aq, paramErr(name, "%q is not a time in unix seconds", v)
			}
			if name == "since" {
				aq.Since = time.Unix(sec, 0)
			} else {
				aq.Until = time.Unix(sec, 0)
			}
		case "after":
			oid, err := bson.ObjectIDFromHex(v)
			if err != nil {
				return aq, paramErr(name, "%q is not an audit entry id (24 hexadecimal digits)", v)
			}
			aq.After = &oid
		default:
			return aq, paramErr(name, "unknown parameter; the audit log accepts admin, user_id, action, since, until, after, limit and offset")
		}
	}
	aq.Limit, aq.Offset = lq.Limit, lq.Offset
	if aq.Limit == 0 {
		aq.Limit = lim.Default
	}
	return aq, nil
}

type auditChangeJSON struct {
	Field  string `json:"field"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

type auditJSON struct {
	ID        string            `json:"id"`
	At        int64             `json:"at"`
	Admin     string            `json:"admin"`
	Action    string            `json:"action"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Query     string            `json:"query"`
	UserIDs   []int64           `json:"user_ids"`
	Remote    string            `json:"remote"`
	Via       string            `json:"via"`
	State     string            `json:"state"`
	Status    *int              `json:"status"`
	Changes   []auditChangeJSON `json:"changes"`
	Truncated bool              `json:"truncated"`
}

func toAuditJSON(e *store.AuditEntry) auditJSON {
	a := auditJSON{ID: e.ID.Hex(), At: e.At.Unix(), Admin: e.Admin, Action: e.Action, Method: e.Method, Path: e.Path, Query: e.Query,
		UserIDs: e.UserIDs, Remote: e.Remote, Via: e.Via, State: e.State, Changes: []auditChangeJSON{}, Truncated: e.Truncated}
	if a.Via == "" {
		a.Via = "api"
	}
	if a.UserIDs == nil {
		a.UserIDs = []int64{}
	}
	if e.Status != 0 {
		status := e.Status
		a.Status = &status
	}
	for _, c := range e.Changes {
		a.Changes = append(a.Changes, auditChangeJSON{Field: c.Field, Before: c.Before, After: c.After})
	}
	return a
}

// ListAudit is GET /v1/audit/: the audit log, newest first. The log has no
// other route: nothing edits or deletes an entry.
func (h *Handler) ListAudit(w http.ResponseWriter, r *http.Request) {
	aq, err := ParseAuditQuery(r.URL.Query(), h.limits)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit := aq.Limit
	aq.Limit++ // one more than the page tells whether another follows
	entries, err := h.store.ListAudit(r.Context(), aq)
	if err != nil {
		h.storeError(w, r, err, "audit log")
		return
	}
	more := int64(len(entries)) > limit
	if more {
		entries = entries[:limit]
	}
	body := listBody{Meta: listMeta{Limit: limit, Offset: aq.Offset}, Objects: make([]any, 0, len(entries))}
	body.Meta.Next, body.Meta.Previous = pageLinks(r.URL, limit, aq.Offset, more)
	for i := range entries {
		body.Objects = append(body.Objects, toAuditJSON(&entries[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// ProfileSnapshot is user id's profile as the management API shows it (no
// password hash), or nil when there is no such user: the audit log's
// "before" of a change.
func (h *Handler) ProfileSnapshot(ctx context.Context, id int64) (map[string]any, error) {
	p, err := h.store.GetProfile(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return h.profileOut(p), nil
}
