package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// frontend is a tenant's stable local URL: a reverse proxy on its own port
// that spreads requests over the ready replicas, as a Service would.
type frontend struct {
	url      string
	server   *http.Server
	listener net.Listener
	next     atomic.Uint64
	backends func() []string // ready replicas' host:port
}

func newFrontend(host string, port int, backends func() []string) (*frontend, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	f := &frontend{
		url:      "http://" + l.Addr().String(),
		listener: l,
		backends: backends,
	}
	type ctxKey struct{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: pr.In.Context().Value(ctxKey{}).(string)})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeUnavailable(w, http.StatusBadGateway, "replica unreachable: "+err.Error())
		},
	}
	f.server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			backends := f.backends()
			if len(backends) == 0 {
				writeUnavailable(w, http.StatusServiceUnavailable, "no ready replica (userve-dev)")
				return
			}
			target := backends[int(f.next.Add(1)%uint64(len(backends)))]
			proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, target)))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := f.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under us: nothing to serve
		}
	}()
	return f, nil
}

func writeUnavailable(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (f *frontend) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = f.server.Shutdown(ctx)
}
