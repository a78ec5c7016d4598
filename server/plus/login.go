package plus

import (
	"errors"
	"net/http"
	"strings"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

var loginInput = input{body: []string{"login", "password", "verifiable_code"}}

// Login is POST /auth/login: login (name, e-mail or phone) with password or
// verifiable_code, judged by account.Login (attempt budgets first).
func (h *Handler) Login(w http.ResponseWriter, r *http.Request) {
	f, err := loginInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	login, _ := f.str("login", true, 254)
	login = strings.TrimSpace(login)
	password, hasPassword := f.str("password", false, 0)
	var code string
	if !hasPassword {
		if f.has("verifiable_code") {
			code, _ = readCode(f)
		} else {
			f.add("password", "password or verifiable_code is required")
		}
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	kind, ident := detectIdentity(login)
	try := account.LoginTry{Address: h.clientIP(r), Ident: ident, UsePassword: hasPassword, Password: password, Code: code,
		From: account.LoginOf(r, h.trustedProxies, account.APIPlus, "")}
	switch kind {
	case byEmail:
		try.Field = store.FieldEmail
	case byPhone:
		try.Field = store.FieldPhone
	case byName:
		try.Field = store.FieldUsername
	}
	// An unknown login has a budget of its own under its name, so probing
	// names is limited like guessing passwords, and both answer alike.
	if try.Ident == "" {
		try.Ident = login
	}
	p, err := h.accounts.Login(r.Context(), try)
	var throttled *account.Throttled
	switch {
	case errors.As(err, &throttled):
		h.fail(w, r, tooMany(throttled, failureBudget(throttled.Budget, "failed logins")))
	case errors.Is(err, account.ErrWrongPassword):
		h.fail(w, r, invalid("password", "login or password is wrong"))
	case errors.Is(err, account.ErrWrongCode):
		h.fail(w, r, invalid("verifiable_code", "login or verifiable_code is wrong, or the code has expired"))
	case err != nil:
		h.fail(w, r, codeError(err))
	case hasPassword:
		h.writeToken(w, r, p, account.MethodPassword)
	default:
		h.writeToken(w, r, p, account.MethodCode)
	}
}
