package server

import (
	"net/http"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"userve.dev/userve/api/v1alpha1"
)

// routes lists every route of the server.
func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	r.Use(recordRoute)

	// Operations.
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	spec := s.cfg.Spec()
	if v1alpha1.Enabled(spec.API.MinApp.Enabled) {
		// /oserve/ serves every /userve/ path too.
		for _, prefix := range []string{"/userve", "/oserve"} {
			s.minappRoutes(r.PathPrefix(prefix).Subrouter())
		}
	}
	if v1alpha1.Enabled(spec.API.Plus.Enabled) {
		s.plusRoutes(r)
	}
	return r
}

// minappRoutes is the management dialect (MinApp's user module), under one
// prefix. Every route needs an admin token.
func (s *Server) minappRoutes(r *mux.Router) {
	r.Use(s.requireAdmin, s.requireStore)
	h := s.minapp
	get, put, post, del, patch := http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch

	// Profiles, v2.0 (the seed) and v2.2 (where JSON).
	r.HandleFunc("/v2.0/miniapp/user_profile/", h.ListProfilesV20).Methods(get)
	r.HandleFunc("/v2.0/miniapp/user_profile/", h.CreateProfile).Methods(post)
	r.HandleFunc("/v2.0/miniapp/user_profile/{user_id}/", h.GetProfile).Methods(get)
	r.HandleFunc("/v2.0/miniapp/user_profile/{user_id}/", h.UpdateProfile).Methods(put)
	r.HandleFunc("/v2.0/miniapp/user_profile/{user_id}/", h.DeleteProfile).Methods(del)
	r.HandleFunc("/v2.2/miniapp/user_profile/", h.ListProfilesV22).Methods(get)
	r.HandleFunc("/v2.2/miniapp/user_profile/", h.CreateProfile).Methods(post)
	r.HandleFunc("/v2.2/miniapp/user_profile/{user_id}/", h.GetProfile).Methods(get)
	r.HandleFunc("/v2.2/miniapp/user_profile/{user_id}/", h.UpdateProfile).Methods(put)
	r.HandleFunc("/v2.2/miniapp/user_profile/{user_id}/", h.DeleteProfile).Methods(del)

	// User groups and membership.
	r.HandleFunc("/v1/user-group/", h.ListGroups).Methods(get)
	r.HandleFunc("/v1/user-group/", h.CreateGroup).Methods(post)
	r.HandleFunc("/v1/user-group/", h.DeleteGroups).Methods(del)
	r.HandleFunc("/v1/user-group/{id}/", h.GetGroup).Methods(get)
	r.HandleFunc("/v1/user-group/{id}/", h.UpdateGroup).Methods(put)
	r.HandleFunc("/v1/user-group/{id}/", h.DeleteGroup).Methods(del)
	r.HandleFunc("/v1/miniapp/group/membership/", h.PatchMembership).Methods(patch)
}

// plusRoutes is the end-user dialect (ThinkSNS Plus v2), under /api/v2.
//
// end-user dialect (server/plus): owned by issue 4
func (s *Server) plusRoutes(r *mux.Router) {
	_ = r
}
