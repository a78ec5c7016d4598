package console

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"userve.dev/userve/api/v1alpha1"
)

// A user's page (GET users/{id}/): profile, custom fields (a form typed
// by their declarations), groups, identities, wallet, follows, sessions,
// login history, and the forms of the actions (useractions.go).

type userData struct {
	ID         int64
	Profile    map[string]any
	Banned     bool
	BanReason  string
	BanExpires int64 // 0: no expiry
	Built      []pair
	Identities []pair
	Fields     []fieldInput
	Groups     []string
	Overview   map[string]any // follows counts and balances (nil when unreadable)
	Ledger     []map[string]any
	Sessions   []map[string]any
	Logins     []map[string]any
	// IdemKey is the wallet form's Idempotency-Key, new with every page:
	// the same form sent twice books once.
	IdemKey  string
	Accounts []string
}

type pair struct {
	Key   string // a message key
	Value string
}

// fieldInput is a custom field in the edit form.
type fieldInput struct {
	Name, Type string
	Value      string // shown in the input (what was typed, after an error)
	Orig       string // the stored value, as the input shows it
	Input      string // text, integer, number, boolean, json
	MaxLength  int32
	Required   bool
}

// walletAccounts are the balances a wallet adjustment may name.
var walletAccounts = []string{"wallet", "new_wallet", "currency"}

// pageRows bounds the ledger and login rows a page shows.
const pageRows = 20

func (h *Handler) userPage(w http.ResponseWriter, r *http.Request, v *view) {
	h.showUser(w, r, v, http.StatusOK, nil)
}

// showUser renders user {id}'s page with status; typed keeps what was
// typed into the custom field form (after a refused change).
func (h *Handler) showUser(w http.ResponseWriter, r *http.Request, v *view, status int, typed map[string]string) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		h.fail(w, r, v, http.StatusNotFound, "err_no_user")
		return
	}
	ans := h.call(r, v, http.MethodGet, fmt.Sprintf("/v2.2/miniapp/user_profile/%d/", id), nil)
	if ans.Status == http.StatusNotFound {
		h.fail(w, r, v, http.StatusNotFound, "err_no_user")
		return
	}
	if !ans.OK() {
		h.fail(w, r, v, ans.Status, ans.Message())
		return
	}
	p := ans.Object()
	d := &userData{ID: id, Profile: p, IdemKey: randomToken(), Accounts: walletAccounts}
	v.Title, v.Data = fmt.Sprintf("%s #%d", v.Lang.T("user_title"), id), d
	if nick, _ := p["nickname"].(string); nick != "" {
		v.Title += " · " + nick
	}
	d.Banned, _ = p["_banned"].(bool)
	d.BanReason, _ = p["_ban_reason"].(string)
	d.BanExpires, _ = toInt(p["_ban_expires_at"])
	for _, k := range []string{"nickname", "gender", "avatar", "city", "province", "country", "language", "created_at", "updated_at"} {
		val := display(p[k])
		switch k {
		case "gender":
			val = v.Lang.T("gender_" + val)
		case "created_at", "updated_at":
			val = funcs["unix"].(func(any) string)(p[k])
		}
		d.Built = append(d.Built, pair{Key: "f_" + k, Value: val})
	}
	for _, k := range []string{"_username", "_phone", "_phone_verified", "_email", "_email_verified", "openid", "unionid"} {
		if s := display(p[k]); s != "" {
			d.Identities = append(d.Identities, pair{Key: "f" + k, Value: s})
		}
	}
	for _, f := range h.fields {
		fi := fieldInput{Name: f.Name, Type: string(f.Type), Orig: inputValue(p[f.Name]), Input: inputKind(f.Type), Required: f.Required}
		if f.MaxLength != nil {
			fi.MaxLength = *f.MaxLength
		}
		fi.Value = fi.Orig
		if s, ok := typed[f.Name]; ok {
			fi.Value = s
		}
		d.Fields = append(d.Fields, fi)
	}
	// The sections are independent reads: fetched at once, the page
	// costs the slowest of them rather than their sum.
	var names map[int64]string
	var wg sync.WaitGroup
	wg.Go(func() { _, names = h.groups(r, v) })
	wg.Go(func() {
		if a := h.call(r, v, http.MethodGet, fmt.Sprintf("/v1/users/%d/overview/", id), nil); a.OK() {
			d.Overview = a.Object()
		}
	})
	wg.Go(func() {
		d.Ledger = h.rows(r, v, fmt.Sprintf("/v1/wallet/transactions/?user_id=%d&limit=%d", id, pageRows))
	})
	wg.Go(func() { d.Sessions = h.rows(r, v, fmt.Sprintf("/v1/users/%d/sessions/", id)) })
	wg.Go(func() { d.Logins = h.rows(r, v, fmt.Sprintf("/v1/users/%d/logins/", id)) })
	wg.Wait()
	if ids, ok := p["user_group"].([]any); ok {
		for _, g := range ids {
			n, _ := toInt(g)
			d.Groups = append(d.Groups, fmt.Sprintf("%s (%d)", names[n], n))
		}
	}
	if len(d.Logins) > pageRows {
		d.Logins = d.Logins[:pageRows]
	}
	h.render(w, status, "user", v)
}

// rows are a list answer's objects; an error leaves the section empty.
func (h *Handler) rows(r *http.Request, v *view, path string) []map[string]any {
	ans := h.call(r, v, http.MethodGet, path, nil)
	if !ans.OK() {
		h.o.Log.Warn("console: a user page section failed", "path", path, "status", ans.Status, "error", ans.Message())
		return nil
	}
	objs, _ := ans.List()
	return objs
}

// inputKind is the form input of a custom field type.
func inputKind(t v1alpha1.CustomFieldType) string {
	switch t {
	case v1alpha1.FieldInteger, v1alpha1.FieldNumber, v1alpha1.FieldBoolean:
		return string(t)
	case v1alpha1.FieldArray, v1alpha1.FieldObject:
		return "json"
	}
	return "text" // string, date (RFC 3339)
}

// inputValue is a stored value as its input shows it ("" when unset).
func inputValue(v any) string {
	if v == nil {
		return ""
	}
	return display(v)
}
