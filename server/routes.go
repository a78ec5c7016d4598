package server

import (
	"net/http"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/plus"
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
			s.minappRoutes(r, prefix)
		}
	}
	if v1alpha1.Enabled(spec.API.Plus.Enabled) {
		s.plusRoutes(r)
	}
	return r
}

// minappRoutes is the management dialect (MinApp's user module), under one
// prefix. Every route needs an admin token.
//
// The routes are registered on the root router, not on a gorilla subrouter:
// with subrouters, a wrong method on a path that several routes share
// answers 404 instead of 405 (mux v1.8.1), so middleware wraps each handler.
func (s *Server) minappRoutes(r *mux.Router, prefix string) {
	h := s.minapp
	route := func(method, path string, handler http.HandlerFunc) {
		r.Handle(prefix+path, s.requireAdmin(s.requireStore(handler))).Methods(method)
	}
	get, put, post, del, patch := http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch

	// Profiles, v2.0 (the seed) and v2.2 (where JSON).
	route(get, "/v2.0/miniapp/user_profile/", h.ListProfilesV20)
	route(post, "/v2.0/miniapp/user_profile/", h.CreateProfile)
	route(get, "/v2.0/miniapp/user_profile/{user_id}/", h.GetProfile)
	route(put, "/v2.0/miniapp/user_profile/{user_id}/", h.UpdateProfile)
	route(del, "/v2.0/miniapp/user_profile/{user_id}/", h.DeleteProfile)
	route(get, "/v2.2/miniapp/user_profile/", h.ListProfilesV22)
	route(post, "/v2.2/miniapp/user_profile/", h.CreateProfile)
	route(get, "/v2.2/miniapp/user_profile/{user_id}/", h.GetProfile)
	route(put, "/v2.2/miniapp/user_profile/{user_id}/", h.UpdateProfile)
	route(del, "/v2.2/miniapp/user_profile/{user_id}/", h.DeleteProfile)

	// User groups and membership.
	route(get, "/v1/user-group/", h.ListGroups)
	route(post, "/v1/user-group/", h.CreateGroup)
	route(del, "/v1/user-group/", h.DeleteGroups)
	route(get, "/v1/user-group/{id}/", h.GetGroup)
	route(put, "/v1/user-group/{id}/", h.UpdateGroup)
	route(del, "/v1/user-group/{id}/", h.DeleteGroup)
	route(patch, "/v1/miniapp/group/membership/", h.PatchMembership)

	// Wallet administration (issue 4; handlers in minapp/wallet.go).
	route(post, "/v1/wallet/transactions/", h.CreateWalletTransaction)
	route(get, "/v1/wallet/transactions/", h.ListWalletTransactions)
}

// plusRoutes is the end-user dialect (ThinkSNS Plus v2), under /api/v2.
// Routes wrapped in h.Authed need a valid token; h.MaybeAuthed routes take
// one if sent (for following/follower).
//
// end-user dialect (server/plus): owned by issue 4
func (s *Server) plusRoutes(r *mux.Router) {
	h, err := plus.New(s.store, s.cfg, s.log, s.plusOptions)
	if err != nil {
		// config.Load refuses such a configuration; a Server built by hand
		// with one answers 503 on every end-user route instead of crashing.
		s.log.Error("end-user API disabled: bad configuration", "error", err)
		r.PathPrefix("/api/v2/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, http.StatusServiceUnavailable, "end-user API is misconfigured")
		})
		return
	}
	s.plus = h
	v2 := r.PathPrefix("/api/v2").Subrouter()
	v2.Use(s.requireStore)
	get, put, post, del, patch := http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch

	// Verification codes, registration, tokens.
	v2.HandleFunc("/verifycodes/register", h.SendRegisterCode).Methods(post)
	v2.HandleFunc("/verifycodes", h.SendCode).Methods(post)
	v2.HandleFunc("/users", h.Register).Methods(post)
	v2.HandleFunc("/auth/login", h.Login).Methods(post)
	v2.HandleFunc("/auth/refresh", h.Refresh).Methods(post)
	v2.HandleFunc("/auth/logout", h.Authed(h.Logout)).Methods(post)
	v2.HandleFunc("/user/retrieve-password", h.RetrievePassword).Methods(put)

	// Users.
	v2.HandleFunc("/users", h.MaybeAuthed(h.ListUsers)).Methods(get)
	v2.HandleFunc("/users/{user}", h.MaybeAuthed(h.GetUser)).Methods(get)
	v2.HandleFunc("/users/{user}/followings", h.MaybeAuthed(h.UserFollowings)).Methods(get)
	v2.HandleFunc("/users/{user}/followers", h.MaybeAuthed(h.UserFollowers)).Methods(get)

	// The caller.
	v2.HandleFunc("/user", h.Authed(h.Me)).Methods(get)
	v2.HandleFunc("/user", h.Authed(h.UpdateMe)).Methods(patch)
	v2.HandleFunc("/user", h.Authed(h.UpdateContact)).Methods(put)
	v2.HandleFunc("/user/password", h.Authed(h.ChangePassword)).Methods(put)
	v2.HandleFunc("/user/phone", h.Authed(h.UnbindPhone)).Methods(del)
	v2.HandleFunc("/user/email", h.Authed(h.UnbindEmail)).Methods(del)
	v2.HandleFunc("/user/followings", h.Authed(h.MyFollowings)).Methods(get)
	v2.HandleFunc("/user/followers", h.Authed(h.MyFollowers)).Methods(get)
	v2.HandleFunc("/user/followings/{user}", h.Authed(h.Follow)).Methods(put)
	v2.HandleFunc("/user/followings/{user}", h.Authed(h.Unfollow)).Methods(del)

	// Wallets.
	v2.HandleFunc("/plus-pay/orders", h.Authed(h.WalletOrders)).Methods(get)
	v2.HandleFunc("/currency/orders", h.Authed(h.CurrencyOrders)).Methods(get)
	v2.HandleFunc("/plus-pay/transfer", h.Authed(h.Transfer)).Methods(post)
}
