package plus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

// readContact reads the phone or email field. want is "sms", "mail" or ""
// (either, but exactly one of them).
func readContact(f *form, want string) (account.Contact, bool) {
	phone, hasPhone := f.str("phone", false, 32)
	email, hasEmail := f.str("email", false, 254)
	switch want {
	case "sms":
		hasEmail = false
		if !hasPhone {
			f.add("phone", "phone is required when verifiable_type is sms")
			return account.Contact{}, false
		}
	case "mail":
		hasPhone = false
		if !hasEmail {
			f.add("email", "email is required when verifiable_type is mail")
			return account.Contact{}, false
		}
	default:
		if hasPhone && hasEmail {
			f.add("phone", "send either phone or email, not both")
			return account.Contact{}, false
		}
		if !hasPhone && !hasEmail {
			f.add("phone", "phone or email is required")
			return account.Contact{}, false
		}
	}
	if hasPhone {
		phone = strings.TrimSpace(phone)
		if !looksLikePhone(phone) {
			f.add("phone", "phone must be 5 to 20 digits, optionally after a '+'")
			return account.Contact{}, false
		}
		return account.Contact{Field: store.FieldPhone, Value: phone}, true
	}
	e := normalizeEmail(email)
	if e == "" {
		f.add("email", "email is not a valid e-mail address")
		return account.Contact{}, false
	}
	return account.Contact{Field: store.FieldEmail, Value: e}, true
}

// readVerifiableType reads "sms" or "mail" (absent: "").
func readVerifiableType(f *form, required bool) string {
	t, ok := f.str("verifiable_type", required, 8)
	if !ok {
		return ""
	}
	if t != "sms" && t != "mail" {
		f.add("verifiable_type", "verifiable_type must be sms or mail")
		return ""
	}
	return t
}

// readCode reads verifiable_code (string or number).
func readCode(f *form) (string, bool) { return readCodeField(f, "verifiable_code") }

// readCodeField reads a verification code from field (string or number).
func readCodeField(f *form, field string) (string, bool) {
	code, ok := f.str(field, true, 16)
	if !ok {
		return "", false
	}
	code = strings.TrimSpace(code)
	if len(code) < verify.MinDigits || len(code) > verify.MaxDigits || strings.Trim(code, "0123456789") != "" {
		f.add(field, field+" must be 4 to 6 digits")
		return "", false
	}
	return code, true
}

// SendRegisterCode is POST /verifycodes/register: a code for a phone or
// e-mail nobody uses yet.
func (h *Handler) SendRegisterCode(w http.ResponseWriter, r *http.Request) {
	h.sendCode(w, r, account.PurposeRegister)
}

// SendCode is POST /verifycodes: a code for an existing user's phone or
// e-mail.
func (h *Handler) SendCode(w http.ResponseWriter, r *http.Request) {
	h.sendCode(w, r, account.PurposeVerify)
}

// noInput is a route that takes nothing besides its path (and token).
var noInput = input{}

var sendCodeInput = input{body: []string{"phone", "email"}}

func (h *Handler) sendCode(w http.ResponseWriter, r *http.Request, purpose string) {
	f, err := sendCodeInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, _ := readContact(f, "")
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.accounts.SendCode(r.Context(), h.clientIP(r), c, purpose)
	var throttled *account.Throttled
	var tooSoon *store.TooSoonError
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, map[string]string{"message": "verification code sent"})
	case errors.Is(err, account.ErrNoDelivery):
		h.fail(w, r, invalid(c.Field, "verification codes cannot be sent to "+describeField(c.Field)+" by this service; use the other one"))
	case errors.As(err, &throttled):
		what := map[account.Budget]string{
			account.BudgetCodeAddress: "too many verification codes requested from this address",
			account.BudgetCodeTarget:  "too many verification codes sent to this " + c.Field + " today",
			account.BudgetCodeTenant:  "this service has sent as many verification codes as it may this hour",
		}[throttled.Budget]
		h.fail(w, r, tooMany(throttled, what))
	case errors.Is(err, account.ErrContactTaken):
		h.fail(w, r, invalid(c.Field, c.Field+" is already taken"))
	case errors.Is(err, account.ErrNoSuchContact):
		h.fail(w, r, invalid(c.Field, "no user has this "+c.Field))
	case errors.As(err, &tooSoon):
		w.Header().Set("Retry-After", strconv.FormatInt(tooSoon.Seconds(), 10))
		h.fail(w, r, newError(http.StatusForbidden,
			fmt.Sprintf("a code was sent to this %s less than a minute ago; retry in %d seconds", c.Field, tooSoon.Seconds())))
	case errors.Is(err, account.ErrUndelivered):
		h.fail(w, r, newError(http.StatusServiceUnavailable, "the verification code could not be delivered; try again later"))
	default:
		h.fail(w, r, err)
	}
}

// describeField names a contact field for a message.
func describeField(field string) string {
	if field == store.FieldPhone {
		return "phone numbers"
	}
	return "e-mail addresses"
}

// usedCodeMessage answers a code that was used already: no guess was
// judged, so it is told apart from a wrong one.
const usedCodeMessage = "verifiable_code was used already; request a new one"

// consumeCode accepts code for c once, or is a 422 on verifiable_code (a
// 429 once the code has had all its tries).
func (h *Handler) consumeCode(ctx context.Context, c account.Contact, code string) error {
	return codeError(h.accounts.ConsumeCode(ctx, c, code))
}

// codeError words an error of account.ConsumeCode.
func codeError(err error) error {
	switch {
	case errors.Is(err, account.ErrWrongCode):
		return invalid("verifiable_code", "verifiable_code is wrong or has expired")
	case errors.Is(err, account.ErrCodeUsed):
		return invalid("verifiable_code", usedCodeMessage)
	case errors.Is(err, account.ErrCodeSpent):
		return newError(http.StatusTooManyRequests,
			fmt.Sprintf("this verification code has had %d tries and no longer works; request a new one", account.MaxCodeAttempts))
	}
	return err
}
