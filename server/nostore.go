package server

import "net/http"

// noStore marks every answer Cache-Control: no-store before the handler
// runs: tokens (login, refresh, registration, WeChat login) and personal
// data (profiles, contacts, wallets, exports) must not be kept by a shared
// cache or the browser's disk cache, in any dialect. A handler serving
// public data may set its own (the OpenAPI documents revalidate with
// no-cache).
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
