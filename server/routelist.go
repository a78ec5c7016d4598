package server

import (
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/mux"
)

// A tenant's routes are split in two: the paths and methods, which decide
// the gorilla router (each route a compiled regular expression: about
// 0.75 MiB and most of the time of building a server), and the handlers,
// which are the tenant's own. Servers whose route paths and methods are the
// same (every tenant with the same dialects on) share one router, built
// once per process; its routes hold no tenant state, only the index of the
// handler the request's own server registered at that place. The server is
// found through the request's routeInfo (set by observe), so a request
// reaches only the handlers of the server it came in through, and a request
// that came in through none is refused.

// routeList collects a server's routes with the part of gorilla's API that
// routes.go uses (Handle, HandleFunc, PathPrefix, then Methods).
type routeList struct {
	entries  []routeEntry
	handlers []http.Handler
}

type routeEntry struct {
	path    string
	prefix  bool
	methods []string
}

// listedRoute is a route being registered; Methods restricts it.
type listedRoute struct {
	l *routeList
	i int
}

func (l *routeList) add(path string, prefix bool, h http.Handler) listedRoute {
	l.entries = append(l.entries, routeEntry{path: path, prefix: prefix})
	l.handlers = append(l.handlers, h)
	return listedRoute{l, len(l.entries) - 1}
}

// Handle registers h on path (a gorilla template).
func (l *routeList) Handle(path string, h http.Handler) listedRoute { return l.add(path, false, h) }

// HandleFunc registers f on path.
func (l *routeList) HandleFunc(path string, f func(http.ResponseWriter, *http.Request)) listedRoute {
	return l.add(path, false, http.HandlerFunc(f))
}

// Methods restricts the route to methods.
func (r listedRoute) Methods(methods ...string) listedRoute {
	e := &r.l.entries[r.i]
	e.methods = append(e.methods, methods...)
	return r
}

// listedPrefix is a path prefix waiting for its handler.
type listedPrefix struct {
	l    *routeList
	path string
}

// PathPrefix registers a handler for every path under prefix.
func (l *routeList) PathPrefix(prefix string) listedPrefix { return listedPrefix{l, prefix} }

func (p listedPrefix) Handler(h http.Handler) listedRoute { return p.l.add(p.path, true, h) }

func (p listedPrefix) HandlerFunc(f func(http.ResponseWriter, *http.Request)) listedRoute {
	return p.l.add(p.path, true, http.HandlerFunc(f))
}

// shape is the routes' paths and methods in order: servers of one shape
// share a router.
func (l *routeList) shape() string {
	var b strings.Builder
	for _, e := range l.entries {
		if e.prefix {
			b.WriteString("prefix ")
		}
		b.WriteString(e.path)
		b.WriteByte(' ')
		b.WriteString(strings.Join(e.methods, ","))
		b.WriteByte('\n')
	}
	return b.String()
}

// maxSharedRouters bounds the routers kept: route paths depend only on
// which dialects are on, so a process sees a handful of shapes; past the
// bound a server gets a router of its own.
const maxSharedRouters = 64

var sharedRouters = struct {
	sync.Mutex
	byShape map[string]*mux.Router
}{byShape: map[string]*mux.Router{}}

// router is the shared router of l's shape.
func (l *routeList) router() *mux.Router {
	shape := l.shape()
	sharedRouters.Lock()
	defer sharedRouters.Unlock()
	if r, ok := sharedRouters.byShape[shape]; ok {
		return r
	}
	r := newSharedRouter(l.entries)
	if len(sharedRouters.byShape) < maxSharedRouters {
		sharedRouters.byShape[shape] = r
	}
	return r
}

func newSharedRouter(entries []routeEntry) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if s := serverOf(w, req); s != nil {
			s.notFound(w, req)
		}
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if s := serverOf(w, req); s != nil {
			s.methodNotAllowed(w, req)
		}
	})
	r.Use(recordRoute)
	for i, e := range entries {
		var route *mux.Route
		if e.prefix {
			route = r.PathPrefix(e.path).Handler(routeSlot(i))
		} else {
			route = r.Handle(e.path, routeSlot(i))
		}
		if len(e.methods) > 0 {
			route.Methods(e.methods...)
		}
	}
	return r
}

// routeSlot is the i-th route of whichever server the request came in
// through.
type routeSlot int

func (i routeSlot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s := serverOf(w, r); s != nil {
		s.routeHandlers[i].ServeHTTP(w, r)
	}
}

// serverOf is the server whose handler chain the request came through;
// without one the request is refused (500), never served by any server.
func serverOf(w http.ResponseWriter, r *http.Request) *Server {
	if info, ok := r.Context().Value(routeKey{}).(*routeInfo); ok && info.server != nil {
		return info.server
	}
	http.Error(w, "request without a tenant server", http.StatusInternalServerError)
	return nil
}
