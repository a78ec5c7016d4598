package minapp

import (
	"fmt"
	"net/http"
	"strconv"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// ListProfilesV20 is GET /v2.0/miniapp/user_profile/ with the seed's query
// parameters.
func (h *Handler) ListProfilesV20(w http.ResponseWriter, r *http.Request) {
	values, ok := query(w, r)
	if !ok {
		return
	}
	q, err := ParseListV20(values, h.limits)
	if err != nil {
		badRequest(w, err)
		return
	}
	h.listProfiles(w, r, q)
}

// ListProfilesV22 is GET /v2.2/miniapp/user_profile/?where=...
func (h *Handler) ListProfilesV22(w http.ResponseWriter, r *http.Request) {
	values, ok := query(w, r)
	if !ok {
		return
	}
	q, err := ParseListV22(values, h.limits, h.schema)
	if err != nil {
		badRequest(w, err)
		return
	}
	h.listProfiles(w, r, q)
}

func (h *Handler) listProfiles(w http.ResponseWriter, r *http.Request, q ListQuery) {
	page, err := h.store.ListProfiles(r.Context(), store.ProfileQuery{
		Filter: q.Filter, Sort: q.Sort, Limit: q.Limit, Offset: q.Offset, Count: q.TotalCount,
	})
	if err != nil {
		h.storeError(w, r, err, "profiles")
		return
	}
	body := listBody{
		Meta:    listMeta{Limit: q.Limit, Offset: q.Offset, TotalCount: page.Total},
		Objects: make([]any, 0, len(page.Profiles)),
	}
	body.Meta.Next, body.Meta.Previous = pageLinks(r.URL, q.Limit, q.Offset, page.More)
	for _, p := range page.Profiles {
		body.Objects = append(body.Objects, h.profileOut(p))
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// GetProfile is GET .../user_profile/{user_id}/.
func (h *Handler) GetProfile(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	p, err := h.store.GetProfile(r.Context(), id)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("user %d", id))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.profileOut(p))
}

// UpdateProfile is PUT .../user_profile/{user_id}/: custom fields only.
func (h *Handler) UpdateProfile(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	var body map[string]any
	if err := httpx.DecodeJSON(r, &body); err != nil {
		badRequest(w, err)
		return
	}
	if body == nil {
		writeError(w, http.StatusBadRequest, "request body must be a JSON object, not null")
		return
	}
	set, unset, err := h.schema.CustomUpdate(body)
	if err != nil {
		badRequest(w, err)
		return
	}
	p, err := h.store.UpdateCustomFields(r.Context(), id, set, unset)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("user %d", id))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.profileOut(p))
}

// CreateProfile is POST .../user_profile/: 201 with the new profile.
func (h *Handler) CreateProfile(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := httpx.DecodeJSON(r, &body); err != nil {
		badRequest(w, err)
		return
	}
	if body == nil {
		writeError(w, http.StatusBadRequest, "request body must be a JSON object, not null")
		return
	}
	p, err := h.schema.NewProfile(body)
	if err != nil {
		badRequest(w, err)
		return
	}
	if len(p.Groups) > 0 {
		missing, err := h.store.MissingGroups(r.Context(), p.Groups)
		if err != nil {
			h.storeError(w, r, err, "groups")
			return
		}
		if len(missing) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("user_group: no group with id %s", joinIDs(missing)))
			return
		}
	}
	if err := h.store.CreateProfile(r.Context(), p); err != nil {
		h.storeError(w, r, err, "user")
		return
	}
	w.Header().Set("Location", r.URL.Path+strconv.FormatInt(p.ID, 10)+"/")
	httpx.WriteJSON(w, http.StatusCreated, h.profileOut(p))
}

// DeleteProfile is DELETE .../user_profile/{user_id}/: 204; the user's
// group memberships go with the profile, follows and wallet through the
// store's cleanups.
func (h *Handler) DeleteProfile(w http.ResponseWriter, r *http.Request) {
	id, ok := h.userID(w, r)
	if !ok {
		return
	}
	if err := h.store.DeleteUser(r.Context(), id); err != nil {
		h.storeError(w, r, err, fmt.Sprintf("user %d", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) userID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	return pathID(w, r, "user_id", "user")
}

func joinIDs(ids []int64) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += strconv.FormatInt(id, 10)
	}
	return s
}
