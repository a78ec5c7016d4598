package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// frontend is a tenant's stable local URL: a reverse proxy on its own port
// that spreads requests over the ready replicas, as a Service would.
type frontend struct {
	url      string
	server   *http.Server
	listener net.Listener
	next     atomic.Uint64
	backends func() []backend // the ready replicas
}

// backend is one ready replica: its address, and the Host to send when it
// is a pool's ("" keeps the caller's).
type backend struct{ addr, host string }

func newFrontend(host string, port int, backends func() []backend) (*frontend, error) {
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
			b := pr.In.Context().Value(ctxKey{}).(backend)
			pr.SetURL(&url.URL{Scheme: "http", Host: b.addr})
			pr.Out.Host = pr.In.Host
			if b.host != "" {
				// A pool picks the tenant by Host, as kube-proxy's
				// callers name the tenant's Service.
				pr.Out.Host = b.host
			}
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

// frontLocked is the tenant's URL, opened on first use.
func (r *Runtime) frontLocked(key types.NamespacedName) (*frontend, error) {
	if f, ok := r.fronts[key]; ok {
		return f, nil
	}
	port := 0
	if r.opts.Ports != nil {
		p, err := r.opts.Ports.Port("tenant:" + key.String())
		if err != nil {
			return nil, err
		}
		port = p
	}
	front, err := newFrontend(r.opts.Host, port, func() []backend { return r.backends(key) })
	if err != nil {
		return nil, fmt.Errorf("tenant URL for %s: %w", key, err)
	}
	r.fronts[key] = front
	return front, nil
}

// closeFrontLocked closes key's URL once neither its own replicas nor a
// pool serve it.
func (r *Runtime) closeFrontLocked(key types.NamespacedName) {
	_, dedicated := r.deployments[key]
	_, pooled := r.pooled[key]
	if f, ok := r.fronts[key]; ok && !dedicated && !pooled {
		delete(r.fronts, key)
		go f.close()
	}
}

// backends are the ready replicas behind key's URL, as its Service's
// endpoints would be: its own, and the pool pods its Service points at
// (reached with the tenant's Host: the pool routes by it).
func (r *Runtime) backends(key types.NamespacedName) []backend {
	r.mu.Lock()
	var reps []*replica
	if d, ok := r.deployments[key]; ok && d.pool == "" {
		reps = append(reps, d.replicas...)
	}
	var poolReps []*replica
	if p, ok := r.pooled[key]; ok {
		poolReps = r.poolReplicasLocked(p)
	}
	r.mu.Unlock()
	var out []backend
	for _, rep := range reps {
		if addr, ready := rep.backend(); ready {
			out = append(out, backend{addr: addr})
		}
	}
	for _, rep := range poolReps {
		if addr, ready := rep.backend(); ready {
			out = append(out, backend{addr: addr, host: serviceHost(key)})
		}
	}
	return out
}
