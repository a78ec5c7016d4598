package plus

import (
	"net/http"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

var updateContactInput = input{body: append([]string{"phone", "email", "verifiable_code"}, proofOfContactChange.fields()...)}

// UpdateContact is PUT /user: bind a new phone or e-mail, proven by a code
// sent to it, by a caller who proves to be the owner (reauth.go). The
// contacts the account had are told.
func (h *Handler) UpdateContact(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r)
	f, err := updateContactInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, _ := readContact(f, "")
	code, _ := readCode(f)
	proof := h.readProof(r, f, proofOfContactChange)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if err := h.reauth(ctx, r, proof, proofOfContactChange); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.mustBeFree(ctx, c.Field, c.Value, me.profile.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, c, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.store.SetContact(ctx, me.profile.ID, c.Field, c.Value); err != nil {
		h.fail(w, r, err)
		return
	}
	old, notice := me.profile.Phone, verify.NoticePhoneChanged
	if c.Field == store.FieldEmail {
		old, notice = me.profile.Email, verify.NoticeEmailChanged
	}
	if old != c.Value {
		h.accounts.Notify(ctx, me.profile, notice)
	}
	noContent(w)
}

// UnbindPhone is DELETE /user/phone.
func (h *Handler) UnbindPhone(w http.ResponseWriter, r *http.Request) {
	h.unbind(w, r, store.FieldPhone)
}

// UnbindEmail is DELETE /user/email.
func (h *Handler) UnbindEmail(w http.ResponseWriter, r *http.Request) {
	h.unbind(w, r, store.FieldEmail)
}

var unbindInput = input{body: []string{"password", "verifiable_code"}}

// unbind removes the phone or e-mail after checking the password and a
// code sent to the bound value.
func (h *Handler) unbind(w http.ResponseWriter, r *http.Request, field string) {
	me := callerOf(r)
	f, err := unbindInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	password, _ := f.str("password", true, 0)
	code, _ := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	bound := me.profile.Phone
	if field == store.FieldEmail {
		bound = me.profile.Email
	}
	if bound == "" {
		h.fail(w, r, invalid(field, "no "+field+" is bound to this account"))
		return
	}
	ctx := r.Context()
	if err := h.checkPassword(ctx, w, r, me.profile, "password", password); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, account.Contact{Field: field, Value: bound}, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.store.UnsetContact(ctx, me.profile.ID, field); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
