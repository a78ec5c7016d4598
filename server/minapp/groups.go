package minapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// Group limits.
const (
	maxGroupName      = 128
	maxGroupDepth     = 32 // parent chains longer than this are refused
	maxMembershipOps  = 100
	maxMembershipIDs  = 1000
	membershipPathVal = "/membership"
)

type groupJSON struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Members int64  `json:"members"`
	Parent  *int64 `json:"parent"`
}

func toGroupJSON(g *store.Group) groupJSON {
	return groupJSON{ID: g.ID, Name: g.Name, Members: g.Members, Parent: g.Parent}
}

// GroupListQuery is a parsed group list request.
type GroupListQuery struct {
	Parent *int64
	Limit  int64
	Offset int64
}

// ParseGroupList reads limit, offset and parent_id.
func ParseGroupList(q url.Values, lim Limits) (GroupListQuery, error) {
	var lq ListQuery
	var gq GroupListQuery
	for _, name := range sortedKeys(q) {
		values := q[name]
		if len(values) != 1 {
			return gq, paramErr(name, "given %d times; give it once", len(values))
		}
		v := values[0]
		if v == "" {
			return gq, paramErr(name, "empty value")
		}
		switch name {
		case "limit", "offset":
			if err := parsePaging(&lq, name, v, lim); err != nil {
				return gq, err
			}
		case "parent_id":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 1 {
				return gq, paramErr(name, "%q is not a group id (a positive integer)", v)
			}
			gq.Parent = &id
		default:
			return gq, paramErr(name, "unknown parameter; the group list accepts limit, offset and parent_id")
		}
	}
	gq.Limit, gq.Offset = lq.Limit, lq.Offset
	if gq.Limit == 0 {
		gq.Limit = lim.Default
	}
	return gq, nil
}

// ListGroups is GET /v1/user-group/.
func (h *Handler) ListGroups(w http.ResponseWriter, r *http.Request) {
	values, ok := query(w, r)
	if !ok {
		return
	}
	q, err := ParseGroupList(values, h.limits)
	if err != nil {
		badRequest(w, err)
		return
	}
	page, err := h.store.ListGroups(r.Context(), store.GroupQuery{Parent: q.Parent, Limit: q.Limit, Offset: q.Offset})
	if err != nil {
		h.storeError(w, r, err, "groups")
		return
	}
	body := listBody{
		Meta:    listMeta{Limit: q.Limit, Offset: q.Offset, TotalCount: &page.Total},
		Objects: make([]any, 0, len(page.Groups)),
	}
	body.Meta.Next, body.Meta.Previous = pageLinks(r.URL, q.Limit, q.Offset, page.More)
	for _, g := range page.Groups {
		body.Objects = append(body.Objects, toGroupJSON(g))
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

type groupBody struct {
	Name   *string         `json:"name"`
	Parent json.RawMessage `json:"parent"` // absent, null or an id
}

// parent reads the parent: set reports whether the body named one.
func (b groupBody) parent() (parent *int64, set bool, err error) {
	if b.Parent == nil {
		return nil, false, nil
	}
	if string(b.Parent) == "null" {
		return nil, true, nil
	}
	// A quoted "1" would decode into a json.Number too; only a bare number is an id.
	var v any
	dec := json.NewDecoder(bytes.NewReader(b.Parent))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, true, errors.New("parent must be a group id or null")
	}
	n, ok := v.(json.Number)
	if !ok {
		return nil, true, fmt.Errorf("parent must be a group id or null, not %s", jsonTypeOf(v))
	}
	id, err := positiveID(n)
	if err != nil {
		return nil, true, fmt.Errorf("parent: %v", err)
	}
	return &id, true, nil
}

func checkGroupName(name *string) (string, error) {
	if name == nil {
		return "", errors.New("name is required")
	}
	n := strings.TrimSpace(*name)
	if n == "" {
		return "", errors.New("name must not be empty")
	}
	if utf8.RuneCountInString(n) > maxGroupName {
		return "", fmt.Errorf("name is longer than %d characters", maxGroupName)
	}
	return n, nil
}

// CreateGroup is POST /v1/user-group/ {"name", "parent"}: 201.
func (h *Handler) CreateGroup(w http.ResponseWriter, r *http.Request) {
	var b groupBody
	if err := httpx.DecodeJSON(r, &b); err != nil {
		badRequest(w, err)
		return
	}
	name, err := checkGroupName(b.Name)
	if err != nil {
		badRequest(w, err)
		return
	}
	parent, _, err := b.parent()
	if err != nil {
		badRequest(w, err)
		return
	}
	if parent != nil && !h.groupExists(w, r, *parent) {
		return
	}
	g := &store.Group{Name: name, Parent: parent}
	if err := h.store.CreateGroup(r.Context(), g); err != nil {
		h.storeError(w, r, err, "group")
		return
	}
	w.Header().Set("Location", r.URL.Path+strconv.FormatInt(g.ID, 10)+"/")
	httpx.WriteJSON(w, http.StatusCreated, toGroupJSON(g))
}

// groupExists answers 400 (and false) when a referenced group is missing.
func (h *Handler) groupExists(w http.ResponseWriter, r *http.Request, id int64) bool {
	missing, err := h.store.MissingGroups(r.Context(), []int64{id})
	if err != nil {
		h.storeError(w, r, err, "group")
		return false
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("parent: no group with id %d", id))
		return false
	}
	return true
}

// GetGroup is GET /v1/user-group/{id}/.
func (h *Handler) GetGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id", "group")
	if !ok {
		return
	}
	g, err := h.store.GetGroup(r.Context(), id)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("group %d", id))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toGroupJSON(g))
}

// UpdateGroup is PUT /v1/user-group/{id}/: name and/or parent; a field left
// out keeps its value, "parent": null moves the group to the top.
func (h *Handler) UpdateGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id", "group")
	if !ok {
		return
	}
	var b groupBody
	if err := httpx.DecodeJSON(r, &b); err != nil {
		badRequest(w, err)
		return
	}
	if b.Name == nil && b.Parent == nil {
		writeError(w, http.StatusBadRequest, "nothing to update: give name and/or parent")
		return
	}
	var name string
	if b.Name != nil {
		n, err := checkGroupName(b.Name)
		if err != nil {
			badRequest(w, err)
			return
		}
		name = n
	}
	parent, parentSet, err := b.parent()
	if err != nil {
		badRequest(w, err)
		return
	}
	cur, err := h.store.GetGroup(r.Context(), id)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("group %d", id))
		return
	}
	if b.Name == nil {
		name = cur.Name
	}
	if !parentSet {
		parent = cur.Parent
	} else if parent != nil {
		// The new parent must exist and must not be the group or one of its
		// descendants.
		chain, err := h.store.GroupParentChain(r.Context(), *parent, maxGroupDepth+1)
		if errors.Is(err, store.ErrNotFound) && len(chain) == 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parent: no group with id %d", *parent))
			return
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.storeError(w, r, err, "group")
			return
		}
		for _, anc := range chain {
			if anc == id {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("parent: group %d cannot be its own ancestor", id))
				return
			}
		}
		if len(chain) > maxGroupDepth {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parent: groups nest at most %d deep", maxGroupDepth))
			return
		}
	}
	g, err := h.store.UpdateGroup(r.Context(), id, name, parent)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("group %d", id))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toGroupJSON(g))
}

// DeleteGroup is DELETE /v1/user-group/{id}/: 204; members lose the group,
// children move to the top level.
func (h *Handler) DeleteGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id", "group")
	if !ok {
		return
	}
	if _, err := h.store.GetGroup(r.Context(), id); err != nil {
		h.storeError(w, r, err, fmt.Sprintf("group %d", id))
		return
	}
	if _, err := h.store.DeleteGroups(r.Context(), []int64{id}); err != nil {
		h.storeError(w, r, err, fmt.Sprintf("group %d", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DeleteGroups is DELETE /v1/user-group/?id__in=1,2: 204. Ids that name no
// group are ignored, so a repeated call succeeds too.
func (h *Handler) DeleteGroups(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r)
	if !ok {
		return
	}
	for name := range q {
		if name != "id__in" {
			badRequest(w, paramErr(name, "unknown parameter; bulk delete takes id__in=1,2"))
			return
		}
	}
	values := q["id__in"]
	if len(values) != 1 || values[0] == "" {
		badRequest(w, paramErr("id__in", "required once, as a comma-separated list of group ids"))
		return
	}
	list, err := parseIDList(values[0])
	if err != nil {
		badRequest(w, paramErr("id__in", "%v", err))
		return
	}
	ids := make([]int64, len(list))
	for i, v := range list {
		ids[i] = v.(int64)
	}
	if _, err := h.store.DeleteGroups(r.Context(), ids); err != nil {
		h.storeError(w, r, err, "groups")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// MembershipOp is one element of the membership PATCH body.
type MembershipOp struct {
	Op     string  `json:"op"`
	Path   string  `json:"path"`
	Users  []int64 `json:"users"`
	Groups []int64 `json:"groups"`
}

// ValidateMembership checks a membership PATCH body.
func ValidateMembership(ops []MembershipOp) error {
	if len(ops) == 0 {
		return errors.New("the body must be a non-empty JSON array of operations")
	}
	if len(ops) > maxMembershipOps {
		return fmt.Errorf("at most %d operations per request", maxMembershipOps)
	}
	users, groups := 0, 0
	for i, op := range ops {
		at := fmt.Sprintf("operation %d", i)
		users, groups = users+len(op.Users), groups+len(op.Groups)
		if users > maxMembershipIDs || groups > maxMembershipIDs {
			return fmt.Errorf("at most %d users and %d groups per request, over all operations", maxMembershipIDs, maxMembershipIDs)
		}
		switch {
		case op.Op != "add" && op.Op != "remove":
			return fmt.Errorf("%s: op %q must be \"add\" or \"remove\"", at, op.Op)
		case op.Path != membershipPathVal:
			return fmt.Errorf("%s: path %q must be %q", at, op.Path, membershipPathVal)
		case len(op.Users) == 0:
			return fmt.Errorf("%s: users must be a non-empty array of user ids", at)
		case len(op.Groups) == 0:
			return fmt.Errorf("%s: groups must be a non-empty array of group ids", at)
		}
		for _, id := range append(append([]int64(nil), op.Users...), op.Groups...) {
			if id < 1 {
				return fmt.Errorf("%s: %d is not an id (a positive integer)", at, id)
			}
		}
	}
	return nil
}

// PatchMembership is PATCH /v1/miniapp/group/membership/: 204. Every user
// and group must exist before anything changes. The operations are sets
// (adding twice or removing a non-member changes nothing), so a request cut
// short by an outage can be repeated.
func (h *Handler) PatchMembership(w http.ResponseWriter, r *http.Request) {
	var ops []MembershipOp
	if err := httpx.DecodeJSON(r, &ops); err != nil {
		badRequest(w, err)
		return
	}
	if err := ValidateMembership(ops); err != nil {
		badRequest(w, err)
		return
	}
	var users, groups []int64
	for _, op := range ops {
		users = append(users, op.Users...)
		groups = append(groups, op.Groups...)
	}
	missing, err := h.store.MissingGroups(r.Context(), groups)
	if err != nil {
		h.storeError(w, r, err, "groups")
		return
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, "groups: no group with id "+joinIDs(dedupe(missing)))
		return
	}
	missing, err = h.store.MissingUsers(r.Context(), users)
	if err != nil {
		h.storeError(w, r, err, "users")
		return
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, "users: no user with id "+joinIDs(dedupe(missing)))
		return
	}
	for _, op := range ops {
		if op.Op == "add" {
			err = h.store.AddMembers(r.Context(), op.Users, op.Groups)
		} else {
			err = h.store.RemoveMembers(r.Context(), op.Users, op.Groups)
		}
		if err != nil {
			h.storeError(w, r, err, "membership")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func dedupe(ids []int64) []int64 {
	seen := map[int64]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
