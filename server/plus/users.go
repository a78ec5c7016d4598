package plus

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

// userJSON is the public user object. Phone and e-mail are never in it:
// only the caller's own object (selfJSON) carries them.
type userJSON struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Bio       string    `json:"bio"`
	Sex       int64     `json:"sex"`
	Location  string    `json:"location"`
	CreatedAt string    `json:"created_at"`
	UpdatedAt string    `json:"updated_at"`
	Following *bool     `json:"following,omitempty"`
	Follower  *bool     `json:"follower,omitempty"`
	Avatar    *string   `json:"avatar"`
	BG        *string   `json:"bg"`
	Verified  any       `json:"verified"`
	Extra     extraJSON `json:"extra"`
}

type extraJSON struct {
	UserID          int64  `json:"user_id"`
	LikesCount      int64  `json:"likes_count"`
	CommentsCount   int64  `json:"comments_count"`
	FollowersCount  int64  `json:"followers_count"`
	FollowingsCount int64  `json:"followings_count"`
	UpdatedAt       string `json:"updated_at"`
	FeedsCount      int64  `json:"feeds_count"`
}

// selfJSON is GET /user: the public object plus what only the user sees.
type selfJSON struct {
	userJSON
	Phone     *string       `json:"phone"`
	Email     *string       `json:"email"`
	Wallet    walletJSON    `json:"wallet"`
	NewWallet newWalletJSON `json:"new_wallet"`
	Currency  currencyJSON  `json:"currency"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// publicUser renders p. A user created through the management API may lack
// a username or location: the nickname and "city province country" stand
// in, so both dialects show the same person.
func publicUser(p *store.Profile, followers, followings int64) userJSON {
	name := p.Username
	if name == "" {
		name = p.Nickname
	}
	location := p.Location
	if location == "" {
		var parts []string
		for _, s := range []string{p.City, p.Province, p.Country} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		location = strings.Join(parts, " ")
	}
	sex := p.Gender
	if sex < 0 || sex > 2 {
		sex = 0
	}
	return userJSON{
		ID: p.ID, Name: name, Bio: p.Bio, Sex: sex, Location: location,
		CreatedAt: formatTime(p.Created), UpdatedAt: formatTime(p.Updated),
		Avatar: optional(p.Avatar), BG: optional(p.BG),
		Extra: extraJSON{
			UserID: p.ID, FollowersCount: followers, FollowingsCount: followings,
			UpdatedAt: formatTime(p.Updated),
		},
	}
}

// withRelations renders users with following/follower as seen by viewer
// (0: anonymous, both false).
func (h *Handler) withRelations(r *http.Request, viewer int64, ps []*store.Profile) ([]userJSON, error) {
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	following, follower, err := h.store.FollowRelations(r.Context(), viewer, ids)
	if err != nil {
		return nil, err
	}
	followers, followings, err := h.store.FollowCounts(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	out := make([]userJSON, len(ps))
	for i, p := range ps {
		u := publicUser(p, followers[p.ID], followings[p.ID])
		fg, fr := following[p.ID], follower[p.ID]
		u.Following, u.Follower = &fg, &fr
		out[i] = u
	}
	return out, nil
}

func viewerID(r *http.Request) int64 {
	if c := callerOf(r); c != nil {
		return c.profile.ID
	}
	return 0
}

// errLookupNeedsToken answers an anonymous lookup by phone or e-mail,
// whether or not anybody has that contact.
var errLookupNeedsToken = newError(http.StatusUnauthorized,
	"looking a user up by phone or e-mail needs a token; anonymous callers look users up by id or name")

// findUser resolves {user}: an e-mail, a phone number, a name or an id, in
// that order. A phone-shaped number nobody has as phone is tried as an id.
//
// Phones and e-mails are not public: an anonymous caller's phone-shaped
// {user} is read as an id only, and an e-mail or a phone-shaped {user}
// that is no user's id is a 401, the same whether or not the contact is
// registered. A signed-in caller's answers that depend on who has a phone
// or e-mail (found by it, or found by nothing) count against the caller's
// lookup budget (account.LookupsPerCaller), a 429 once spent.
func (h *Handler) findUser(r *http.Request, ident string) (*store.Profile, error) {
	ctx := r.Context()
	kind, v := detectIdentity(ident)
	var p *store.Profile
	var err error
	switch kind {
	case byEmail, byPhone:
		p, err = h.findByContact(r, kind, v)
	case byName:
		p, err = h.store.FindProfileBy(ctx, store.FieldUsername, v)
	case byID:
		id, _ := numericID(v)
		p, err = h.store.GetProfile(ctx, id)
	default:
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(http.StatusNotFound, "user not found")
	}
	return p, err
}

// findByContact is findUser for an e-mail or a phone-shaped {user} (see
// there).
func (h *Handler) findByContact(r *http.Request, kind identityKind, v string) (*store.Profile, error) {
	ctx := r.Context()
	id, isID := numericID(v)
	me := callerOf(r)
	if me == nil {
		if !isID || kind != byPhone {
			return nil, errLookupNeedsToken
		}
		p, err := h.store.GetProfile(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errLookupNeedsToken
		}
		return p, err
	}
	field := store.FieldEmail
	if kind == byPhone {
		field = store.FieldPhone
	}
	p, err := h.store.FindProfileBy(ctx, field, v)
	if errors.Is(err, store.ErrNotFound) && isID && kind == byPhone {
		// An id answers as any id lookup does: it tells nothing about phones.
		if p, err = h.store.GetProfile(ctx, id); err == nil {
			return p, nil
		}
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if lerr := h.accounts.CountLookup(ctx, me.profile.ID); lerr != nil {
		var throttled *account.Throttled
		if errors.As(lerr, &throttled) {
			return nil, tooMany(throttled, "too many users looked up by phone or e-mail")
		}
		return nil, lerr
	}
	return p, err
}

// queryID reads an optional positive integer query parameter.
func queryID(r *http.Request, name string) (int64, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	id, ok := numericID(v)
	if !ok {
		return 0, false, invalid(name, name+" must be a positive integer user id")
	}
	return id, true, nil
}

var getUserInput = input{query: []string{"following", "follower"}}

// GetUser is GET /users/{user}. following and follower say whether the
// caller (or the user given by the `following` / `follower` parameter)
// follows this user, and whether this user follows the caller (or them).
func (h *Handler) GetUser(w http.ResponseWriter, r *http.Request) {
	if _, err := getUserInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := h.findUser(r, mux.Vars(r)["user"])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	viewer := viewerID(r)
	followingOf, hasFollowing, err := queryID(r, "following")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	followerOf, hasFollower, err := queryID(r, "follower")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !hasFollowing {
		followingOf = viewer
	}
	if !hasFollower {
		followerOf = viewer
	}
	// Both relations in one query (none for an anonymous caller).
	followingEdge := store.FollowEdge{Follower: followingOf, Followee: p.ID}
	followerEdge := store.FollowEdge{Follower: p.ID, Followee: followerOf}
	var edges []store.FollowEdge
	if followingOf != 0 {
		edges = append(edges, followingEdge)
	}
	if followerOf != 0 {
		edges = append(edges, followerEdge)
	}
	exist, err := h.store.FollowsAll(r.Context(), edges)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	followers, followings, err := h.store.FollowCounts(r.Context(), []int64{p.ID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	u := publicUser(p, followers[p.ID], followings[p.ID])
	following, follower := exist[followingEdge], exist[followerEdge]
	u.Following, u.Follower = &following, &follower
	writeJSON(w, http.StatusOK, u)
}

// Me is GET /user: the caller with phone, e-mail and wallets.
func (h *Handler) Me(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	p := callerOf(r).profile
	wallet, err := h.store.GetWallet(r.Context(), p.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	followers, followings, err := h.store.FollowCounts(r.Context(), []int64{p.ID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, selfJSON{
		userJSON:  publicUser(p, followers[p.ID], followings[p.ID]),
		Phone:     optional(p.Phone),
		Email:     optional(p.Email),
		Wallet:    renderWallet(wallet, p),
		NewWallet: renderNewWallet(wallet, p),
		Currency:  renderCurrency(wallet, p),
	})
}

var listUsersInput = input{query: []string{"limit", "order", "since", "name", "fetch_by", "id"}}

// ListUsers is GET /users.
func (h *Handler) ListUsers(w http.ResponseWriter, r *http.Request) {
	if _, err := listUsersInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	q, err := parseListUsers(r.URL.Query(), h.defaultLimit, h.maxLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// A name substring scans the users; exact names (fetch_by=username) and
	// ids use an index.
	if v := r.URL.Query(); v.Get("name") != "" && v.Get("fetch_by") != "username" {
		err := h.accounts.CountSearch(r.Context(), h.clientIP(r))
		var throttled *account.Throttled
		if errors.As(err, &throttled) {
			err = tooMany(throttled, "too many name searches from this address")
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	page, err := h.store.ListProfiles(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out, err := h.withRelations(r, viewerID(r), page.Profiles)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// maxListIDs bounds `id` and `name` lists of GET /users.
const maxListIDs = 50

// parseListUsers turns GET /users parameters into a store query. Unknown
// parameters were refused before (listUsersInput).
func parseListUsers(v map[string][]string, defaultLimit, maxLimit int64) (store.ProfileQuery, error) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	q := store.ProfileQuery{Limit: defaultLimit}
	if s := get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > maxLimit {
			return q, invalid("limit", "limit must be an integer from 1 to "+strconv.FormatInt(maxLimit, 10))
		}
		q.Limit = n
	}
	desc := true
	switch get("order") {
	case "", "desc":
	case "asc":
		desc = false
	default:
		return q, invalid("order", "order must be asc or desc")
	}
	q.Sort = []store.SortKey{{Field: store.FieldID, Desc: desc}}
	var conds []store.Filter
	if s := get("since"); s != "" {
		since, ok := numericID(s)
		if !ok {
			return q, invalid("since", "since must be a positive integer user id")
		}
		op := store.OpLt
		if !desc {
			op = store.OpGt
		}
		conds = append(conds, store.Where(store.FieldID, op, since))
	}
	fetchBy := get("fetch_by")
	switch fetchBy {
	case "", "id", "username":
	default:
		return q, invalid("fetch_by", "fetch_by must be id or username")
	}
	if name := get("name"); name != "" {
		if fetchBy == "username" {
			names := splitList(name)
			if len(names) == 0 || len(names) > maxListIDs {
				return q, invalid("name", "name must list 1 to 50 comma-separated names")
			}
			in := make([]any, len(names))
			for i, n := range names {
				in[i] = n
			}
			conds = append(conds, store.Where(store.FieldUsername, store.OpIn, in))
		} else {
			if len([]rune(name)) > 64 {
				return q, invalid("name", "name may be at most 64 characters")
			}
			conds = append(conds, store.Where(store.FieldUsername, store.OpContains, name))
		}
	} else if fetchBy == "username" {
		return q, invalid("name", "name is required when fetch_by is username")
	}
	if s := get("id"); s != "" {
		parts := splitList(s)
		if len(parts) == 0 || len(parts) > maxListIDs {
			return q, invalid("id", "id must list 1 to 50 comma-separated user ids")
		}
		in := make([]any, 0, len(parts))
		for _, p := range parts {
			id, ok := numericID(p)
			if !ok {
				return q, invalid("id", "id must be a comma-separated list of positive integers")
			}
			in = append(in, id)
		}
		conds = append(conds, store.Where(store.FieldID, store.OpIn, in))
	}
	q.Filter = store.All(conds...)
	return q, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var updateMeInput = input{body: []string{"name", "bio", "sex", "location", "avatar", "bg"}}

// UpdateMe is PATCH /user: name, bio, sex, location, avatar, bg.
func (h *Handler) UpdateMe(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	f, err := updateMeInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	set := map[string]any{}
	if name, ok := f.str("name", false, 64); ok {
		if p := nameProblem(name); p != "" {
			f.add("name", p)
		} else {
			set[store.FieldUsername] = name
		}
	}
	if bio, ok := f.str("bio", false, 255); ok {
		set[store.FieldBio] = bio
	}
	if sex, ok := f.integer("sex", false, 0, 2); ok {
		set[store.FieldGender] = sex
	}
	if loc, ok := f.str("location", false, 255); ok {
		set[store.FieldLocation] = loc
	}
	if avatar, ok := f.str("avatar", false, 2048); ok {
		set[store.FieldAvatar] = avatar
	}
	if bg, ok := f.str("bg", false, 2048); ok {
		set["bg"] = bg
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	if len(set) == 0 {
		noContent(w)
		return
	}
	ctx := r.Context()
	if name, ok := set[store.FieldUsername].(string); ok {
		if err := h.mustBeFree(ctx, store.FieldUsername, name, me.ID); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if _, err := h.store.UpdateProfile(ctx, me.ID, set); err != nil {
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			err = invalid("name", "name is already taken")
		}
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
