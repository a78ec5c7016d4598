package minapp

// User merge (beyond the MinApp seeds; issue 14): fold one user into
// another when the same person got two accounts, say one by WeChat login
// and one by phone registration. The store does the work (store/merge.go);
// this is its HTTP face.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// MergeBody is POST /v1/user-merge/.
type MergeBody struct {
	From           json.RawMessage `json:"from"`
	Into           json.RawMessage `json:"into"`
	IdempotencyKey *string         `json:"idempotency_key"`
}

// MergeRequest is a validated merge.
type MergeRequest struct {
	From, Into int64
	Key        string // "" : the default key of the pair
}

// ParseMerge validates a merge body.
func ParseMerge(data []byte) (MergeRequest, error) {
	var b MergeBody
	var req MergeRequest
	if err := httpx.Unmarshal(data, &b); err != nil {
		return req, err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *int64
	}{{"from", b.From, &req.From}, {"into", b.Into, &req.Into}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			return req, fmt.Errorf("%s is required: a user id", f.name)
		}
		id, err := strconv.ParseInt(string(f.raw), 10, 64)
		if err != nil || id < 1 {
			return req, fmt.Errorf("%s %s is not a user id (a positive integer)", f.name, clipRaw(f.raw))
		}
		*f.dst = id
	}
	if req.From == req.Into {
		return req, errors.New("from and into are the same user")
	}
	if b.IdempotencyKey != nil {
		k := *b.IdempotencyKey
		if k == "" || len(k) > maxIdempotencyKey || strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return req, fmt.Errorf("idempotency_key must be 1 to %d printable ASCII characters without spaces", maxIdempotencyKey)
		}
		req.Key = "key:" + k
	}
	return req, nil
}

// MergeUsers is POST /v1/user-merge/ {"from","into","idempotency_key"?}:
// 200 with the merge and the merged user. The same request again (same
// key, by default the pair) answers the same and changes nothing; one that
// was cut off half-way is finished by it.
func (h *Handler) MergeUsers(w http.ResponseWriter, r *http.Request) {
	data, err := httpx.ReadBody(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	req, err := ParseMerge(data)
	if err != nil {
		badRequest(w, err)
		return
	}
	m, started, p, err := h.store.MergeUsers(r.Context(), req.Key, req.From, req.Into)
	var mc *store.MergeConflictError
	var am *store.AlreadyMergedError
	switch {
	case errors.As(err, &mc):
		names := make([]string, len(mc.Fields))
		for i, f := range mc.Fields {
			names[i] = managementName(f)
		}
		writeError(w, http.StatusConflict, "both users have "+strings.Join(names, ", ")+": remove it from one of them first; nothing was changed")
		return
	case errors.As(err, &am):
		writeError(w, http.StatusConflict, fmt.Sprintf("user %d was already merged into user %d", req.From, am.Into))
		return
	case errors.Is(err, store.ErrMergeMismatch):
		writeError(w, http.StatusBadRequest, "idempotency_key was already used to merge other users")
		return
	case errors.Is(err, store.ErrMergeBusy):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, store.ErrInsufficientFunds):
		writeError(w, http.StatusConflict, fmt.Sprintf("user %d spent money while being merged; credit it back or retry the merge", req.From))
		return
	case errors.Is(err, store.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusConflict, "the merge is still moving money; retry shortly")
		return
	case err != nil:
		h.storeError(w, r, err, "user")
		return
	}
	if !started {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	moved := make([]string, 0, len(m.Plan.Identities))
	for f := range m.Plan.Identities {
		moved = append(moved, managementName(f))
	}
	slices.Sort(moved)
	groups := m.Plan.Groups
	if groups == nil {
		groups = []int64{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"from": m.From, "into": m.Into, "status": m.State,
		"moved":        map[string]any{"identities": moved, "user_group": groups, "balances": m.Plan.Balances, "profile": m.Plan.Profile},
		"transactions": m.Transfers,
		"user":         h.profileOut(p),
	})
}
