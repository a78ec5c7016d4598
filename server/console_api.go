package server

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"userve.dev/userve/server/config"
	"userve.dev/userve/server/console"
)

// consoleAPI is how the console (server/console) acts: each of its reads
// and changes is a request to the management routes, through the same
// handlers, checks and audit log as a request bearing the admin's token,
// under the admin name the console session proved (docs/console.md).
type consoleAPI struct{ s *Server }

// consoleAdminKey marks an in-process request of the console with the
// session's admin name. Only consoleAPI sets it, and no HTTP request can
// carry a context value, so requireAdmin may trust it.
type consoleAdminKey struct{}

// Do runs one management request for admin; r is the console request
// being served (its context and client address, which the audit log
// records).
func (c consoleAPI) Do(r *http.Request, admin, method, path string, body []byte) console.Answer {
	req, err := c.request(r, admin, method, path, body)
	if err != nil {
		return console.Answer{Status: http.StatusBadRequest, Body: []byte(`{"status":"error","error_msg":"bad console request"}`)}
	}
	rec := &answerRecorder{header: http.Header{}}
	c.s.router.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return console.Answer{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
}

// Forward runs one bodiless management request for admin with its answer
// written to w as it comes (a download: the export streams).
func (c consoleAPI) Forward(w http.ResponseWriter, r *http.Request, admin, method, path string) {
	req, err := c.request(r, admin, method, path, nil)
	if err != nil {
		c.s.writeError(w, r, http.StatusBadRequest, "bad console request")
		return
	}
	c.s.router.ServeHTTP(w, req)
}

// request is the in-process request of Do and Forward.
func (c consoleAPI) request(r *http.Request, admin, method, path string, body []byte) (*http.Request, error) {
	ctx := context.WithValue(r.Context(), consoleAdminKey{}, admin)
	// The console request keeps its own route label in the metrics; the
	// shared router serves the request with this server's handlers.
	ctx = context.WithValue(ctx, routeKey{}, &routeInfo{server: c.s})
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("User-Agent", r.UserAgent())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// CheckToken is the admin token check requireAdmin makes, for the
// console's login form: constant time, every token compared.
func (c consoleAPI) CheckToken(token string) (string, bool) { return c.s.adminTokenName(token) }

// TokenKeys are the digests of the admin tokens, which a console session
// must still be signed in with.
func (c consoleAPI) TokenKeys() []string {
	keys := make([]string, 0, len(c.s.adminTokens))
	for _, t := range c.s.adminTokens {
		keys = append(keys, console.TokenKey(string(t.token)))
	}
	return keys
}

// answerRecorder keeps an in-process answer.
type answerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *answerRecorder) Header() http.Header { return a.header }

func (a *answerRecorder) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *answerRecorder) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(b)
}

// newConsole builds the console of one prefix.
func (s *Server) newConsole(prefix string) http.Handler {
	trusted, err := config.TrustedProxies(s.cfg.Spec())
	if err != nil {
		s.log.Error("console: bad spec.api.plus.trustedProxies; trusting none", "error", err)
	}
	return console.New(console.Options{
		Prefix: prefix, Store: s.store, Accounts: s.accounts, API: consoleAPI{s}, Spec: s.cfg.Spec(),
		TrustedProxies: trusted, Log: s.log,
	})
}
