package console

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/api/v1alpha1"
)

// The actions of a user's page, each a POST to users/{id}/<name> that
// makes one management request (audited there under the session's admin)
// and then shows the page again: with a note of what was done (303, so a
// reload does not repeat it), or with the API's refusal.
func (h *Handler) userActions() map[string]func(http.ResponseWriter, *http.Request, *view) {
	return map[string]func(http.ResponseWriter, *http.Request, *view){
		"fields":       h.saveFields,
		"ban":          h.ban,
		"unban":        h.simple("unban", http.MethodDelete, "/v1/users/%d/ban/"),
		"end-sessions": h.simple("sessions_ended", http.MethodDelete, "/v1/users/%d/sessions/"),
		"end-session":  h.endSession,
		"wallet":       h.adjustWallet,
		"merge":        h.merge,
		"delete":       h.deleteUser,
	}
}

func pathUser(r *http.Request) int64 {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0
	}
	return id
}

// finish shows the outcome of the API call ans: back to the user's page
// with done, or that page again with the API's message.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, v *view, ans Answer, done string, typed map[string]string) {
	if ans.OK() {
		http.Redirect(w, r, fmt.Sprintf("%s/users/%d/?done=%s", h.base, pathUser(r), done), http.StatusSeeOther)
		return
	}
	v.Error = ans.Message()
	status := ans.Status
	if status == http.StatusNotFound {
		h.fail(w, r, v, status, v.Error)
		return
	}
	h.showUser(w, r, v, status, typed)
}

// refuse shows the page again with a problem of the form itself.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, v *view, msg string) {
	v.Error = msg
	h.showUser(w, r, v, http.StatusBadRequest, nil)
}

// simple is an action that is one bodiless request on the user.
func (h *Handler) simple(done, method, path string) func(http.ResponseWriter, *http.Request, *view) {
	return func(w http.ResponseWriter, r *http.Request, v *view) {
		h.finish(w, r, v, h.call(r, v, method, fmt.Sprintf(path, pathUser(r)), nil), done, nil)
	}
}

// saveFields sends the custom fields whose input changed: typed as their
// declarations say, null for a cleared input. A value that does not parse
// as its type is sent as typed, for the API to refuse in its own words.
func (h *Handler) saveFields(w http.ResponseWriter, r *http.Request, v *view) {
	body, typed := map[string]any{}, map[string]string{}
	for _, f := range h.fields {
		val, orig := r.PostFormValue("f_"+f.Name), r.PostFormValue("orig_"+f.Name)
		typed[f.Name] = val
		if val == orig {
			continue
		}
		body[f.Name] = typedValue(f.Type, val)
	}
	if len(body) == 0 {
		http.Redirect(w, r, fmt.Sprintf("%s/users/%d/", h.base, pathUser(r)), http.StatusSeeOther)
		return
	}
	ans := h.call(r, v, http.MethodPut, fmt.Sprintf("/v2.2/miniapp/user_profile/%d/", pathUser(r)), body)
	h.finish(w, r, v, ans, "saved", typed)
}

func typedValue(t v1alpha1.CustomFieldType, s string) any {
	if strings.TrimSpace(s) == "" && t != v1alpha1.FieldString {
		return nil
	}
	switch t {
	case v1alpha1.FieldString:
		if s == "" {
			return nil
		}
	case v1alpha1.FieldInteger:
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n
		}
	case v1alpha1.FieldNumber:
		if n, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(n) && !math.IsInf(n, 0) {
			return n
		}
	case v1alpha1.FieldBoolean:
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	case v1alpha1.FieldArray, v1alpha1.FieldObject:
		var x any
		if json.Unmarshal([]byte(s), &x) == nil {
			return x
		}
	}
	return s
}

// ban bans with a reason and an optional end (a UTC date and time).
func (h *Handler) ban(w http.ResponseWriter, r *http.Request, v *view) {
	body := map[string]any{"reason": r.PostFormValue("reason")}
	if s := strings.TrimSpace(r.PostFormValue("expires")); s != "" {
		t, err := time.Parse("2006-01-02T15:04", s)
		if err != nil {
			h.refuse(w, r, v, v.Lang.Tf("err_not_datetime", v.Lang.T("ban_expires"), s))
			return
		}
		body["expires_at"] = t.Unix()
	}
	h.finish(w, r, v, h.call(r, v, http.MethodPut, fmt.Sprintf("/v1/users/%d/ban/", pathUser(r)), body), "banned", nil)
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, v *view) {
	sid := r.PostFormValue("session")
	path := fmt.Sprintf("/v1/users/%d/sessions/%s/", pathUser(r), url.PathEscape(sid))
	h.finish(w, r, v, h.call(r, v, http.MethodDelete, path, nil), "session_ended", nil)
}

// adjustWallet books a credit or debit under the form's Idempotency-Key.
func (h *Handler) adjustWallet(w http.ResponseWriter, r *http.Request, v *view) {
	amount, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("amount")), 10, 64)
	if err != nil {
		h.refuse(w, r, v, v.Lang.Tf("err_not_integer", v.Lang.T("wallet_amount"), r.PostFormValue("amount")))
		return
	}
	body := map[string]any{"user_id": pathUser(r), "account": r.PostFormValue("account"), "amount": amount,
		"title": r.PostFormValue("title"), "idempotency_key": r.PostFormValue("idempotency_key")}
	h.finish(w, r, v, h.call(r, v, http.MethodPost, "/v1/wallet/transactions/", body), "adjusted", nil)
}

// merge folds this user into another; the page shown next is the other's.
func (h *Handler) merge(w http.ResponseWriter, r *http.Request, v *view) {
	into, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("into")), 10, 64)
	if err != nil {
		h.refuse(w, r, v, v.Lang.Tf("err_not_integer", v.Lang.T("merge_into"), r.PostFormValue("into")))
		return
	}
	ans := h.call(r, v, http.MethodPost, "/v1/user-merge/", map[string]any{"from": pathUser(r), "into": into})
	if ans.OK() {
		http.Redirect(w, r, fmt.Sprintf("%s/users/%d/?done=merged", h.base, into), http.StatusSeeOther)
		return
	}
	h.finish(w, r, v, ans, "", nil)
}

// deleteUser deletes, once the user's id is typed again to confirm.
func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, v *view) {
	id := pathUser(r)
	if strings.TrimSpace(r.PostFormValue("confirm")) != itoa(id) {
		h.refuse(w, r, v, v.Lang.T("err_confirm_delete"))
		return
	}
	ans := h.call(r, v, http.MethodDelete, fmt.Sprintf("/v2.2/miniapp/user_profile/%d/", id), nil)
	if ans.OK() {
		http.Redirect(w, r, h.base+"/users/?done=deleted", http.StatusSeeOther)
		return
	}
	h.finish(w, r, v, ans, "", nil)
}
