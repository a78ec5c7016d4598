package plus

// Re-authentication of this dialect's sensitive changes (account.Reauthenticate):
// PUT /user (a new phone or e-mail), PUT /user/wechat, POST /user/wechat/phone
// and PUT /user/password without a password yet. The seed's request
// shapes keep working: within spec.api.plus.reauthWindow of a login
// nothing extra is needed; later the request adds `password`, or a code
// sent (POST /verifycodes) to the account's phone, else e-mail.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"userve.dev/userve/server/account"
)

// proofFields name where a route takes its proof: the password (none for a
// first password) and a code sent to the account's current contact.
type proofFields struct{ password, code string }

var (
	// proofOfContactChange: PUT /user's verifiable_code is the new
	// contact's code, so the current contact's has its own field.
	proofOfContactChange = proofFields{password: "password", code: "current_verifiable_code"}
	// proofOfWeChat: the WeChat routes' own field is `code`.
	proofOfWeChat = proofFields{password: "password", code: "verifiable_code"}
	// proofOfFirstPassword: the new password is no proof.
	proofOfFirstPassword = proofFields{code: "verifiable_code"}
)

// fields lists the body fields pf adds to a route's input.
func (pf proofFields) fields() []string {
	var out []string
	for _, f := range []string{pf.password, pf.code} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// readProof reads the proof fields of f (their problems are f's 422s).
func (h *Handler) readProof(r *http.Request, f *form, pf proofFields) account.Proof {
	p := account.Proof{Address: h.clientIP(r), LoggedInAt: callerOf(r).claims.AuthTime}
	if pf.password != "" && f.has(pf.password) {
		p.Password, p.HasPassword = f.str(pf.password, true, 0)
	}
	if !p.HasPassword && f.has(pf.code) {
		p.Code, p.HasCode = readCodeField(f, pf.code)
	}
	return p
}

// reauth judges proof for the caller; the error is the answer: 403 without
// proof past the window, 422 on the field of a wrong one, 429 when the
// password or code budgets are spent.
func (h *Handler) reauth(ctx context.Context, r *http.Request, proof account.Proof, pf proofFields) error {
	me := callerOf(r).profile
	err := h.accounts.Reauthenticate(ctx, me, proof, h.reauthWindow)
	var throttled *account.Throttled
	switch {
	case err == nil:
		return nil
	case errors.Is(err, account.ErrReauthRequired):
		return newError(http.StatusForbidden, h.reauthHint(me.PasswordHash != "", pf))
	case errors.Is(err, account.ErrNoPassword):
		return invalid(pf.password, "this account has no password; send "+pf.code+" (a code sent to your phone or e-mail) instead")
	case errors.Is(err, account.ErrNoContact):
		return invalid(pf.code, "this account has no phone or e-mail to send a code to; log in again first")
	case errors.As(err, &throttled):
		return tooMany(throttled, failureBudget(throttled.Budget, "wrong passwords"))
	case errors.Is(err, account.ErrWrongPassword):
		return invalid(pf.password, pf.password+" is wrong")
	}
	if ae, ok := codeError(err).(*apiError); ok && ae.fields != nil {
		// codeError names verifiable_code; this route's field may differ.
		return invalid(pf.code, strings.Replace(ae.message, "verifiable_code", pf.code, 1))
	}
	return codeError(err)
}

// reauthHint says what the 403 wants.
func (h *Handler) reauthHint(hasPassword bool, pf proofFields) string {
	ways := pf.code + " (a code sent to your phone, else e-mail, with POST /api/v2/verifycodes)"
	if hasPassword && pf.password != "" {
		ways = pf.password + " or " + ways
	}
	return fmt.Sprintf("this change needs proof that it is you: send %s, or log in again (a login less than %s old needs nothing more)",
		ways, h.reauthWindow)
}
