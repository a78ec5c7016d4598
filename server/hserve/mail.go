package hserve

import (
	"errors"
	"net/http"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// E-mail flows. MinApp mails a link to a page it hosts; userve delivers
// codes (spec.verification.mail), so an app's own page finishes the flow
// with the code (docs/hserve.md): the e-mail verification through this
// dialect, the password reset through /api/v2/user/retrieve-password.

// RequestPasswordReset is POST /hserve/v2.0/user/password/reset/ {email}
// (auth.requestPasswordReset): a code to the account's e-mail, for PUT
// /api/v2/user/retrieve-password. The answer is the same whether or not a
// user has the address (no account oracle); the code budgets apply.
func (h *Handler) RequestPasswordReset(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r, false, "email")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, email := identity(f, byEmail)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.accounts.SendCode(r.Context(), h.clientAddress(r), account.Contact{Field: store.FieldEmail, Value: email}, account.PurposeVerify)
	if err != nil && !errors.Is(err, account.ErrNoSuchContact) {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// EmailVerify is POST /hserve/v2.0/user/email-verify/: without a body
// (currentUser.requestEmailVerification()) a code to the caller's e-mail;
// with {code} (the app's verification page) the e-mail is verified.
func (h *Handler) EmailVerify(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	f, err := readForm(r, true, "code")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if me.Anonymous {
		h.fail(w, r, newError(http.StatusForbidden, "an anonymous user has no e-mail to verify"))
		return
	}
	if me.Email == "" {
		h.fail(w, r, badRequest("this user has no e-mail address: set one first (setEmail)"))
		return
	}
	ctx := r.Context()
	to := account.Contact{Field: store.FieldEmail, Value: me.Email}
	if !f.has("code") {
		if err := h.accounts.SendCode(ctx, h.clientAddress(r), to, account.PurposeVerify); err != nil {
			h.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	code := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.ConsumeCode(ctx, to, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.store.UpdateAccount(ctx, me.ID, map[string]any{store.FieldEmailVerified: true}, ""); err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
