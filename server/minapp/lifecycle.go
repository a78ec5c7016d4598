package minapp

// Account lifecycle (docs/server.md, "Bans and sessions"): bans, and the
// sessions (logins) of any user. The rules are the account package's;
// these handlers only shape HTTP around them.

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// MaxBanReason is the longest ban reason, in characters: it is shown to
// the user, so a sentence or two.
const MaxBanReason = 500

// banBody is PUT .../ban/.
type banBody struct {
	Reason    *string `json:"reason"`
	ExpiresAt *int64  `json:"expires_at"` // unix seconds; null or absent: no expiry
}

// BanUser is PUT /v1/users/{user_id}/ban/ {reason, expires_at}: from the
// next request on, on every replica, the user's tokens and logins are
// refused (403, with the reason) until expires_at. A second ban replaces
// the first.
func (h *Handler) BanUser(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	var b banBody
	if err := httpx.DecodeJSON(r, &b); err != nil {
		badRequest(w, err)
		return
	}
	until, err := h.readBan(b)
	if err != nil {
		badRequest(w, err)
		return
	}
	p, err := h.store.BanUser(r.Context(), id, strings.TrimSpace(*b.Reason), until)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("user %d", id))
		return
	}
	h.log.Info("user banned", "user", id, "until", until)
	httpx.WriteJSON(w, http.StatusOK, h.profileOut(p))
}

// readBan checks a ban body: its end (store.BanForever without expiry).
func (h *Handler) readBan(b banBody) (time.Time, error) {
	if b.Reason == nil {
		return time.Time{}, errors.New("reason is required: the user is shown it")
	}
	reason := strings.TrimSpace(*b.Reason)
	if reason == "" || utf8.RuneCountInString(reason) > MaxBanReason || !utf8.ValidString(reason) {
		return time.Time{}, fmt.Errorf("reason must be 1 to %d characters", MaxBanReason)
	}
	if b.ExpiresAt == nil {
		return store.BanForever, nil
	}
	until := time.Unix(*b.ExpiresAt, 0).UTC()
	if !until.After(h.store.Now()) {
		return time.Time{}, errors.New("expires_at must be in the future (unix seconds); DELETE the ban to lift it now")
	}
	if !until.Before(store.BanForever) {
		return time.Time{}, errors.New("expires_at is too far; leave it out for a ban without expiry")
	}
	return until, nil
}

// UnbanUser is DELETE /v1/users/{user_id}/ban/: the ban is lifted (also
// when there was none).
func (h *Handler) UnbanUser(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	p, err := h.store.UnbanUser(r.Context(), id)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("user %d", id))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.profileOut(p))
}

// profileOut is the management profile object with the ban fields, as
// profile routes answer it.
func (h *Handler) profileOut(p *store.Profile) map[string]any {
	out := h.schema.profileJSON(p)
	ban := p.ActiveBan(h.store.Now())
	out["_banned"] = ban != nil
	if ban != nil {
		out["_ban_reason"] = ban.Reason
		out["_ban_expires_at"] = nil
		if !ban.Permanent() {
			out["_ban_expires_at"] = ban.Until.Unix()
		}
	}
	return out
}

// ListUserSessions is GET /v1/users/{user_id}/sessions/: the user's live
// logins, newest first (at most store.MaxSessionsListed).
func (h *Handler) ListUserSessions(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	p, err := h.store.GetProfile(ctx, id)
	if err == nil {
		var sessions []store.Session
		if sessions, err = h.Accounts.Sessions(ctx, p); err == nil {
			n := int64(len(sessions))
			body := listBody{Meta: listMeta{Limit: store.MaxSessionsListed, TotalCount: &n}, Objects: []any{}}
			for _, ss := range sessions {
				body.Objects = append(body.Objects, sessionJSON(ss))
			}
			httpx.WriteJSON(w, http.StatusOK, body)
			return
		}
	}
	h.storeError(w, r, err, fmt.Sprintf("user %d", id))
}

func sessionJSON(ss store.Session) map[string]any {
	return map[string]any{
		"id": ss.ID, "api": ss.API, "method": ss.Method, "address": ss.Address, "user_agent": ss.UserAgent,
		"started_at": ss.StartedAt.Unix(), "last_used_at": ss.LastUsedAt.Unix(), "expires_at": ss.ExpiresAt.Unix(),
	}
}

// sessionID is what a session id looks like (a token family: 128 bits,
// base64url; or a jti of a token from before families).
var sessionID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// EndUserSession is DELETE /v1/users/{user_id}/sessions/{session_id}/:
// every token of that login is refused from now on, on every replica.
func (h *Handler) EndUserSession(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	sid := mux.Vars(r)["session_id"]
	if !sessionID.MatchString(sid) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("session id %q is malformed", sid))
		return
	}
	err := h.Accounts.EndSession(r.Context(), id, sid)
	if errors.Is(err, account.ErrNoSession) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("user %d has no session %s", id, sid))
		return
	}
	if err != nil {
		h.storeError(w, r, err, "session")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// EndUserSessions is DELETE /v1/users/{user_id}/sessions/: every session
// of the user ends.
func (h *Handler) EndUserSessions(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	p, err := h.store.GetProfile(ctx, id)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("user %d", id))
		return
	}
	sessions, err := h.Accounts.Sessions(ctx, p)
	for i := 0; err == nil && i < len(sessions); i++ {
		if err = h.Accounts.EndSession(ctx, id, sessions[i].ID); errors.Is(err, account.ErrNoSession) {
			err = nil // ended meanwhile
		}
	}
	if err != nil {
		h.storeError(w, r, err, "session")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ListUserLogins is GET /v1/users/{user_id}/logins/: the user's login
// attempts within the tenant's spec.api.plus.loginHistory, newest first
// (at most store.MaxLoginsListed).
func (h *Handler) ListUserLogins(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	_, err := h.store.GetProfile(ctx, id)
	if err == nil {
		var logins []store.LoginRecord
		if logins, err = h.Accounts.LoginHistory(ctx, id); err == nil {
			n := int64(len(logins))
			body := listBody{Meta: listMeta{Limit: store.MaxLoginsListed, TotalCount: &n}, Objects: []any{}}
			for _, l := range logins {
				body.Objects = append(body.Objects, map[string]any{
					"at": l.At.Unix(), "api": l.API, "method": l.Method, "address": l.Address, "result": l.Result,
				})
			}
			httpx.WriteJSON(w, http.StatusOK, body)
			return
		}
	}
	h.storeError(w, r, err, fmt.Sprintf("user %d", id))
}
