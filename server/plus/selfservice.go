package plus

// The user's own data (issue 15 part 4): a copy of everything the service
// holds about the caller, and deleting the account.

import (
	"context"
	"net/http"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

// Bounds of the self-service export: follow lists and ledger entries past
// these are cut (and the export says so with "truncated").
const (
	exportMaxFollows = 10000
	exportMaxLedger  = 10000
	exportPage       = 500
)

type identitiesJSON struct {
	OpenID  *string `json:"openid"`
	UnionID *string `json:"unionid"`
	Name    *string `json:"name"`
	Email   *string `json:"email"`
	Phone   *string `json:"phone"`
}

type groupRefJSON struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type exportJSON struct {
	Profile    selfJSON       `json:"profile"`
	Identities identitiesJSON `json:"identities"`
	Custom     map[string]any `json:"custom"`
	Groups     []groupRefJSON `json:"groups"`
	Followings []int64        `json:"followings"`
	Followers  []int64        `json:"followers"`
	Ledger     []orderJSON    `json:"ledger"`
	Truncated  bool           `json:"truncated"`
}

// ExportMe is GET /user/export: the caller's profile, identities, custom
// fields, groups, follows and wallet ledger as one JSON document.
func (h *Handler) ExportMe(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	p := callerOf(r).profile
	wallet, err := h.store.GetWallet(ctx, p.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := exportJSON{Custom: p.Custom, Groups: []groupRefJSON{}, Ledger: []orderJSON{}}
	if out.Custom == nil {
		out.Custom = map[string]any{}
	}
	if out.Followings, err = h.store.Followings(ctx, p.ID, exportMaxFollows+1, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	if out.Followers, err = h.store.Followers(ctx, p.ID, exportMaxFollows+1, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	for _, l := range []*[]int64{&out.Followings, &out.Followers} {
		if len(*l) > exportMaxFollows {
			*l, out.Truncated = (*l)[:exportMaxFollows], true
		}
	}
	out.Profile = selfJSON{
		userJSON:  publicUser(p, int64(len(out.Followers)), int64(len(out.Followings))),
		Phone:     optional(p.Phone),
		Email:     optional(p.Email),
		Wallet:    renderWallet(wallet, p),
		NewWallet: renderNewWallet(wallet, p),
		Currency:  renderCurrency(wallet, p),
	}
	out.Identities = identitiesJSON{OpenID: optional(p.OpenID), UnionID: optional(p.UnionID),
		Name: optional(p.Username), Email: optional(p.Email), Phone: optional(p.Phone)}
	if len(p.Groups) > 0 {
		names, err := h.store.GroupNames(ctx)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, id := range p.Groups {
			out.Groups = append(out.Groups, groupRefJSON{ID: id, Name: names[id]})
		}
	}
	truncated, err := h.exportLedger(ctx, p.ID, &out.Ledger)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out.Truncated = out.Truncated || truncated
	w.Header().Set("Content-Disposition", `attachment; filename="user-export.json"`)
	writeJSON(w, http.StatusOK, out)
}

// exportLedger appends every ledger entry of the user, newest first.
func (h *Handler) exportLedger(ctx context.Context, user int64, out *[]orderJSON) (truncated bool, err error) {
	q := store.LedgerQuery{UserID: user, Limit: exportPage}
	for {
		entries, _, err := h.store.ListLedger(ctx, q)
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			if len(*out) == exportMaxLedger {
				return true, nil
			}
			*out = append(*out, renderOrder(e, user))
		}
		if int64(len(entries)) < q.Limit {
			return false, nil
		}
		q.BeforeID = entries[len(entries)-1].ID
	}
}

var deleteMeInput = input{body: []string{"password", "verifiable_code", "verifiable_type"}}

// DeleteMe is DELETE /user {password} or {verifiable_code[, verifiable_type]}:
// 204 after deleting the account, its follows (both sides' counts follow
// from the edges), memberships and tokens (a token of a deleted user is
// refused, as its profile is gone). Ledger entries stay, anonymized.
func (h *Handler) DeleteMe(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	f, err := deleteMeInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	switch {
	case f.has("password"):
		password, _ := f.str("password", true, 0)
		if err := f.err(); err != nil {
			h.fail(w, r, err)
			return
		}
		if me.PasswordHash == "" {
			h.fail(w, r, invalid("password", "the account has no password; confirm with verifiable_code"))
			return
		}
		if err := h.checkPassword(ctx, w, r, me, "password", password); err != nil {
			h.fail(w, r, err)
			return
		}
	case f.has("verifiable_code"):
		vtype := readVerifiableType(f, false)
		code, _ := readCode(f)
		if err := f.err(); err != nil {
			h.fail(w, r, err)
			return
		}
		c := account.Contact{Field: store.FieldPhone, Value: me.Phone}
		if vtype == "mail" || (vtype == "" && me.Phone == "") {
			c = account.Contact{Field: store.FieldEmail, Value: me.Email}
		}
		if c.Value == "" {
			h.fail(w, r, invalid("verifiable_type", "no "+c.Field+" is bound to this account to send a code to"))
			return
		}
		if err := h.consumeCode(ctx, c, code); err != nil {
			h.fail(w, r, err)
			return
		}
	default:
		h.fail(w, r, invalid("password", "password or verifiable_code is required to delete the account"))
		return
	}
	if err := h.store.DeleteUser(ctx, me.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("account deleted by its user", "user", me.ID)
	noContent(w)
}
