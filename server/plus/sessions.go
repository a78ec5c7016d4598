package plus

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

// session is one login as the caller sees it (docs/plus.md, "Sessions").
type session struct {
	ID         string `json:"id"`
	API        string `json:"api"`
	Method     string `json:"method"`
	Address    string `json:"address"`
	UserAgent  string `json:"user_agent"`
	StartedAt  string `json:"started_at"`
	LastUsedAt string `json:"last_used_at"`
	ExpiresAt  string `json:"expires_at"`
	Current    bool   `json:"current"` // the login of the token of this request
}

// MySessions is GET /user/sessions: the caller's live logins, newest
// first, the current one marked.
func (h *Handler) MySessions(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	c := callerOf(r)
	sessions, err := h.accounts.Sessions(r.Context(), c.profile)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]session, 0, len(sessions))
	for _, ss := range sessions {
		out = append(out, sessionOut(ss, ss.ID == c.claims.Family))
	}
	writeJSON(w, http.StatusOK, out)
}

func sessionOut(ss store.Session, current bool) session {
	return session{ID: ss.ID, API: ss.API, Method: ss.Method, Address: ss.Address, UserAgent: ss.UserAgent,
		StartedAt: formatTime(ss.StartedAt), LastUsedAt: formatTime(ss.LastUsedAt), ExpiresAt: formatTime(ss.ExpiresAt),
		Current: current}
}

// EndMySession is DELETE /user/sessions/{session}: every token of that
// login (the current one too, when it is the caller's own) is refused from
// now on, on every replica.
func (h *Handler) EndMySession(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	err := h.accounts.EndSession(r.Context(), callerOf(r).profile.ID, mux.Vars(r)["session"])
	if errors.Is(err, account.ErrNoSession) {
		err = newError(http.StatusNotFound, "no such session (it may have ended already)")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
