package minapp

import (
	"fmt"
	"net/http"

	"userve.dev/userve/server/httpx"
)

// UserOverview is GET /v1/users/{user_id}/overview/: the counts and
// balances a user's page shows next to the profile (issue 23's console):
// followers and followings, and the three wallet balances.
func (h *Handler) UserOverview(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	_, err := h.store.GetProfile(ctx, id)
	if err == nil {
		followers, followings, ferr := h.store.FollowCounts(ctx, []int64{id})
		if err = ferr; err == nil {
			wallet, werr := h.store.GetWallet(ctx, id)
			if err = werr; err == nil {
				httpx.WriteJSON(w, http.StatusOK, map[string]any{
					"user_id": id, "followers_count": followers[id], "followings_count": followings[id],
					"wallet": wallet.Wallet, "new_wallet": wallet.NewWallet, "currency": wallet.Currency,
				})
				return
			}
		}
	}
	h.storeError(w, r, err, fmt.Sprintf("user %d", id))
}
