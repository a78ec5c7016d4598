package server

import (
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/mux"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi"
	"userve.dev/userve/server/hserve"
)

// routes lists every route of the server, and answers the router of their
// shape, shared with the servers whose routes are the same (routelist.go).
func (s *Server) routes() *mux.Router {
	r := &routeList{}
	defer func() { s.routeHandlers = r.handlers }()

	// Operations.
	r.HandleFunc(healthzPath, s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc(readyzPath, s.readyz).Methods(http.MethodGet, http.MethodHead)
	// /metrics is not here: it is served on its own listener
	// (MetricsHandler), which the Service's http port and the Ingress do not
	// route, so the main listener answers 404 on it.

	spec := s.cfg.Spec()
	if v1alpha1.Enabled(spec.API.MinApp.Enabled) {
		// /oserve/ serves every /userve/ path too.
		for _, prefix := range []string{"/userve", "/oserve"} {
			s.minappRoutes(r, prefix)
		}
	}
	if v1alpha1.ConsoleEnabled(spec) {
		for _, prefix := range []string{"/userve", "/oserve"} {
			s.consoleRoutes(r, prefix)
		}
	}
	if s.plus != nil || s.plusErr != nil {
		s.plusRoutes(r)
	}
	if s.hserve != nil || s.hserveErr != nil {
		s.hserveRoutes(r)
	}
	return r.router()
}

// minappRoutes is the management dialect (MinApp's user module), under one
// prefix. Every route needs an admin token.
//
// The routes are registered on the root router, not on a gorilla subrouter:
// with subrouters, a wrong method on a path that several routes share
// answers 404 instead of 405 (mux v1.8.1), so middleware wraps each handler.
func (s *Server) minappRoutes(r *routeList, prefix string) {
	h := s.minapp
	operationIDs := openapi.ManagementOperationIDs()
	route := func(method, path string, handler http.HandlerFunc) {
		var next http.Handler = handler
		// Every change, and the export (reading everybody), is an admin
		// action the audit log records (audit.go).
		if method != http.MethodGet || path == "/v1/export/users/" {
			action := operationIDs[method+" "+path]
			if action == "" {
				action = method + " " + path
			}
			// Routes that answer with the profile record its fields before
			// and after.
			answersProfile := strings.Contains(path, "/user_profile/") || strings.HasSuffix(path, "/ban/")
			next = s.audited(action, answersProfile, next)
		}
		r.Handle(prefix+path, s.requireAdmin(s.extendBulk(s.requireStore(next)))).Methods(method)
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

	// Bans and sessions (issue 23; minapp/lifecycle.go).
	route(put, "/v1/users/{user_id}/ban/", h.BanUser)
	route(del, "/v1/users/{user_id}/ban/", h.UnbanUser)
	route(get, "/v1/users/{user_id}/sessions/", h.ListUserSessions)
	route(del, "/v1/users/{user_id}/sessions/", h.EndUserSessions)
	route(del, "/v1/users/{user_id}/sessions/{session_id}/", h.EndUserSession)
	route(get, "/v1/users/{user_id}/logins/", h.ListUserLogins)
	route(get, "/v1/users/{user_id}/overview/", h.UserOverview)

	// User merge (issue 14; minapp/merge.go).
	route(post, "/v1/user-merge/", h.MergeUsers)

	// Migration in and out (issue 15; handlers in minapp/migration.go).
	route(post, "/v1/import/users/", h.ImportUsers)
	route(get, "/v1/export/users/", h.ExportUsers)

	// The audit log (issue 23; server/audit.go), read-only: no route
	// changes or deletes an entry.
	route(get, "/v1/audit/", h.ListAudit)

	// Event deliveries to the tenant's backend (issue 23; minapp/events.go).
	route(get, "/v1/events/deliveries/", h.ListDeliveries)
	route(post, "/v1/events/deliveries/{id}/retry/", h.RetryDelivery)

	// This dialect's OpenAPI document (issue 16; server/openapi.go); it
	// names the tenant's custom fields, so it needs a token too.
	r.Handle(prefix+"/openapi.json", s.requireAdmin(s.serveOpenAPI(openapi.Management))).Methods(get)
}

// consoleRoutes serve the tenant console (server/console, issue 23) under
// one prefix: HTML pages whose every read and change is a management
// request run in-process as the signed-in admin (console_api.go).
//
// The console is built on its first request: most servers (a pool builds
// one per tenant) never serve it, and building it costs about a third of
// building the rest of the server.
func (s *Server) consoleRoutes(r *routeList, prefix string) {
	console := sync.OnceValue(func() http.Handler { return s.newConsole(prefix) })
	base := prefix + openapi.ConsolePath
	r.Handle(base, http.RedirectHandler(base+"/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(base+"/").HandlerFunc(func(w http.ResponseWriter, req *http.Request) { console().ServeHTTP(w, req) }).
		Methods(http.MethodGet, http.MethodHead, http.MethodPost)
}

// plusRoutes is the end-user dialect (ThinkSNS Plus v2), under /api/v2.
// Routes wrapped in h.Authed need a valid token; h.MaybeAuthed routes take
// one if sent (for following/follower).
//
// Like minappRoutes, the routes are on the root router (a subrouter would
// answer 404 for a wrong method); the router's NotFound and
// MethodNotAllowed handlers answer /api/ paths in this dialect's shape.
func (s *Server) plusRoutes(r *routeList) {
	h := s.plus
	if s.plusErr != nil {
		// A configuration New could not build the dialect with (buildDialects).
		r.PathPrefix("/api/v2/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, http.StatusServiceUnavailable, "end-user API is misconfigured")
		})
		return
	}
	route := func(method, path string, handler http.HandlerFunc) {
		r.Handle("/api/v2"+path, s.requireStore(handler)).Methods(method)
	}
	get, put, post, del, patch := http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch

	// This dialect's OpenAPI document (issue 16; server/openapi.go).
	r.Handle("/api/v2/openapi.json", s.serveOpenAPI(openapi.EndUser)).Methods(get)

	// Verification codes, registration, tokens.
	route(post, "/verifycodes/register", h.SendRegisterCode)
	route(post, "/verifycodes", h.SendCode)
	route(post, "/users", h.Register)
	route(post, "/auth/login", h.Login)
	route(post, "/auth/refresh", h.Refresh)
	route(post, "/auth/logout", h.Authed(h.Logout))
	route(put, "/user/retrieve-password", h.RetrievePassword)

	// Users.
	route(get, "/users", h.MaybeAuthed(h.ListUsers))
	route(get, "/users/{user}", h.MaybeAuthed(h.GetUser))
	route(get, "/users/{user}/followings", h.MaybeAuthed(h.UserFollowings))
	route(get, "/users/{user}/followers", h.MaybeAuthed(h.UserFollowers))

	// The caller.
	route(get, "/user", h.Authed(h.Me))
	route(patch, "/user", h.Authed(h.UpdateMe))
	route(del, "/user", h.Authed(h.DeleteMe))
	route(get, "/user/export", h.Authed(h.ExportMe))
	route(put, "/user", h.Authed(h.UpdateContact))
	route(put, "/user/password", h.Authed(h.ChangePassword))
	route(get, "/user/sessions", h.Authed(h.MySessions))
	route(del, "/user/sessions/{session}", h.Authed(h.EndMySession))
	route(del, "/user/phone", h.Authed(h.UnbindPhone))
	route(del, "/user/email", h.Authed(h.UnbindEmail))
	route(get, "/user/followings", h.Authed(h.MyFollowings))
	route(get, "/user/followers", h.Authed(h.MyFollowers))
	route(put, "/user/followings/{user}", h.Authed(h.Follow))
	route(del, "/user/followings/{user}", h.Authed(h.Unfollow))

	// Wallets.
	route(get, "/plus-pay/orders", h.Authed(h.WalletOrders))
	route(get, "/currency/orders", h.Authed(h.CurrencyOrders))
	route(post, "/plus-pay/transfer", h.Authed(h.Transfer))

	// WeChat mini-program login and linking, when spec.wechat is set
	// (issue 14; handlers in plus/wechat.go).
	if h.WeChatEnabled() {
		route(post, "/auth/wechat", h.LoginWeChat)
		route(put, "/user/wechat", h.Authed(h.LinkWeChat))
		route(del, "/user/wechat", h.Authed(h.UnlinkWeChat))
		route(post, "/user/wechat/phone", h.Authed(h.BindWeChatPhone))
		route(put, "/user/wechat/profile", h.Authed(h.SetWeChatProfile))
	}
}

// hserveRoutes is the MinApp SDK dialect (issue 24; server/hserve), under
// /hserve: the paths of minapp-sdk 3.23.6 (core/config API). Every route
// checks the client ID first (and answers CORS for allowed origins, errors
// included); h.Authed routes need a Hydrogen-r1 token. Each path also
// answers CORS preflights (OPTIONS), which carry no client ID.
func (s *Server) hserveRoutes(r *routeList) {
	h := s.hserve
	if s.hserveErr != nil {
		r.PathPrefix(hserve.Prefix + "/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, http.StatusServiceUnavailable, "MinApp SDK API is misconfigured")
		})
		return
	}
	var paths []string
	methods := map[string][]string{}
	route := func(method, path string, handler http.HandlerFunc) {
		r.Handle(hserve.Prefix+path, h.Client(s.requireStore(handler))).Methods(method)
		if methods[path] == nil {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
	}
	get, put, post := http.MethodGet, http.MethodPut, http.MethodPost

	// This dialect's OpenAPI document (public, like /api/v2/openapi.json).
	r.Handle(hserve.Prefix+"/openapi.json", s.serveOpenAPI(openapi.HServe)).Methods(get)

	// Registration, login, sessions (core/auth.js).
	for _, kind := range []string{"username", "email", "phone"} {
		route(post, "/v2.1/register/"+kind+"/", h.Register(kind))
		route(post, "/v2.1/login/"+kind+"/", h.Login(kind))
	}
	route(post, "/v2.1/login/sms/", h.LoginSMS)
	route(post, "/v2.0/login/anonymous/", h.AnonymousLogin)
	route(post, "/v2.0/session/destroy/", h.Authed(h.Logout))

	// SMS codes (BaaS.sendSmsCode, BaaS.verifySmsCode).
	route(post, "/v2.2/sms-verification-code/", h.SendSMSCode)
	route(post, "/v1.8/sms-verification-code/verify/", h.VerifySMSCode)

	// The current user (core/User.js, core/UserRecord.js).
	route(get, "/v2.5/user/info/{user_id}/", h.Authed(h.GetUser))
	route(get, "/v2.5/user/info/", h.Authed(h.GetUser))
	route(put, "/v2.5/user/info/", h.Authed(h.UpdateMe))
	route(put, "/v2.2/user/account/", h.Authed(h.UpdateAccount))
	route(post, "/v2.1/sms-phone-verification/", h.Authed(h.VerifyPhone))
	route(post, "/v2.0/user/email-verify/", h.Authed(h.EmailVerify))
	route(post, "/v2.0/user/password/reset/", h.RequestPasswordReset)

	// WeChat mini-program login (the SDK's WeChat build), with spec.wechat.
	if h.WeChatEnabled() {
		route(post, "/v2.5/idp/wechat/silent-login/", h.SilentLogin)
		route(post, "/v2.4/idp/wechat/user-associate/", h.Authed(h.Associate))
		route(post, "/v2.7/idp/wechat/phone-login/", h.PhoneLogin)
	}

	for _, path := range paths {
		r.Handle(hserve.Prefix+path, h.Preflight(methods[path]...)).Methods(http.MethodOptions)
	}
}
