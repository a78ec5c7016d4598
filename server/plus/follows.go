package plus

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/store"
)

// targetUser reads the {user} id of a follow route; unknown users are 404.
func (h *Handler) targetUser(r *http.Request) (*store.Profile, error) {
	id, ok := numericID(mux.Vars(r)["user"])
	if !ok {
		return nil, newError(http.StatusNotFound, "user not found")
	}
	p, err := h.store.GetProfile(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(http.StatusNotFound, "user not found")
	}
	return p, err
}

// Follow is PUT /user/followings/{user}. Following someone twice changes
// nothing.
func (h *Handler) Follow(w http.ResponseWriter, r *http.Request) {
	h.follow(w, r, true)
}

// Unfollow is DELETE /user/followings/{user}. Unfollowing someone one does
// not follow changes nothing.
func (h *Handler) Unfollow(w http.ResponseWriter, r *http.Request) {
	h.follow(w, r, false)
}

func (h *Handler) follow(w http.ResponseWriter, r *http.Request, on bool) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	me := callerOf(r).profile
	target, err := h.targetUser(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if target.ID == me.ID {
		h.fail(w, r, invalid("user", "you cannot follow yourself"))
		return
	}
	if on {
		_, err = h.store.Follow(r.Context(), me.ID, target.ID)
	} else {
		_, err = h.store.Unfollow(r.Context(), me.ID, target.ID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// MyFollowings is GET /user/followings.
func (h *Handler) MyFollowings(w http.ResponseWriter, r *http.Request) {
	h.followList(w, r, h.callerID, true)
}

// MyFollowers is GET /user/followers.
func (h *Handler) MyFollowers(w http.ResponseWriter, r *http.Request) {
	h.followList(w, r, h.callerID, false)
}

// UserFollowings is GET /users/{user}/followings.
func (h *Handler) UserFollowings(w http.ResponseWriter, r *http.Request) {
	h.followList(w, r, h.pathUser, true)
}

// UserFollowers is GET /users/{user}/followers.
func (h *Handler) UserFollowers(w http.ResponseWriter, r *http.Request) {
	h.followList(w, r, h.pathUser, false)
}

func (h *Handler) callerID(r *http.Request) (int64, error) { return callerOf(r).profile.ID, nil }

func (h *Handler) pathUser(r *http.Request) (int64, error) {
	p, err := h.findUser(r, mux.Vars(r)["user"])
	if err != nil {
		return 0, err
	}
	return p.ID, nil
}

var followListInput = input{query: []string{"limit", "offset"}}

// followList lists whom the user (found by whose) follows, or their
// followers. The parameters are checked before the user is looked up.
func (h *Handler) followList(w http.ResponseWriter, r *http.Request, whose func(*http.Request) (int64, error), followings bool) {
	if _, err := followListInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	limit, offset, err := parsePage(r, h.defaultLimit, h.maxLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	user, err := whose(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var ids []int64
	if followings {
		ids, err = h.store.Followings(r.Context(), user, limit, offset)
	} else {
		ids, err = h.store.Followers(r.Context(), user, limit, offset)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	byID, err := h.store.ProfilesByIDs(r.Context(), ids)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ps := make([]*store.Profile, 0, len(ids))
	for _, id := range ids {
		if p := byID[id]; p != nil {
			ps = append(ps, p)
		}
	}
	out, err := h.withRelations(r, viewerID(r), ps)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// maxOffset bounds offset: the store walks every row it skips, so a deep
// page costs as much as reading all the rows before it. Clients page
// further with a cursor where the route has one (after, since).
const maxOffset = 10_000

// parsePage reads limit (1..max, default def) and offset (0..maxOffset).
func parsePage(r *http.Request, def, maxLimit int64) (limit, offset int64, err error) {
	q := r.URL.Query()
	limit = def
	if s := q.Get("limit"); s != "" {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 1 || n > maxLimit {
			return 0, 0, invalid("limit", "limit must be an integer from 1 to "+strconv.FormatInt(maxLimit, 10))
		}
		limit = n
	}
	if s := q.Get("offset"); s != "" {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 0 || n > maxOffset {
			return 0, 0, invalid("offset", "offset must be an integer from 0 to "+strconv.Itoa(maxOffset))
		}
		offset = n
	}
	return limit, offset, nil
}
