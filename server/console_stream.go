package server

import (
	"context"
	"net/http"
)

// Stream runs one bodiless management request for admin like Do, but
// writes its answer to w as the handler writes it: the console's export
// download, which may be far larger than an answer held in memory. w
// unwraps to the console's own ResponseWriter, so the export route can
// extend the connection's deadlines.
func (c consoleAPI) Stream(w http.ResponseWriter, r *http.Request, admin, method, path string) {
	ctx := context.WithValue(r.Context(), consoleAdminKey{}, admin)
	ctx = context.WithValue(ctx, routeKey{}, &routeInfo{})
	req, err := http.NewRequestWithContext(ctx, method, path, http.NoBody)
	if err != nil {
		http.Error(w, "bad console request", http.StatusBadRequest)
		return
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("User-Agent", r.UserAgent())
	c.s.router.ServeHTTP(w, req)
}
