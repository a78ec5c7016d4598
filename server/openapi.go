package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gorilla/mux"

	"userve.dev/userve/openapi"
	"userve.dev/userve/server/config"
)

// openAPIDocs are the tenant's two descriptions, built on first use from
// the router and the spec (they change only with the configuration, which
// restarts the process), so an idle tenant spends neither start-up time nor
// memory on them.
type openAPIDocs struct {
	once   sync.Once
	cfg    *config.Config
	router *mux.Router
	docs   map[openapi.Dialect][]byte
	err    error
}

func (o *openAPIDocs) get() (map[openapi.Dialect][]byte, error) {
	o.once.Do(func() { o.docs, o.err = buildOpenAPI(o.cfg, o.router) })
	return o.docs, o.err
}

// buildOpenAPI describes the routes r holds.
func buildOpenAPI(cfg *config.Config, r *mux.Router) (map[openapi.Dialect][]byte, error) {
	routes, err := routeTable(r)
	if err != nil {
		return nil, err
	}
	docs := map[openapi.Dialect][]byte{}
	for _, d := range openapi.Dialects {
		if docs[d], err = openapi.Build(d, *cfg.Spec(), routes); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// routeTable lists the router's routes, one per method.
func routeTable(r *mux.Router) ([]openapi.Route, error) {
	var routes []openapi.Route
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // a prefix route (the misconfigured end-user API) has no template
		}
		if openapi.IsConsolePath(path) {
			return nil // the console's HTML pages are not API (docs/console.md)
		}
		methods, err := route.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s has no methods", path)
		}
		for _, m := range methods {
			if m == http.MethodHead {
				continue // served with GET on /healthz and /readyz only
			}
			routes = append(routes, openapi.Route{Method: m, Path: path})
		}
		return nil
	})
	return routes, err
}

// OpenAPI is the document of dialect d this server serves.
func (s *Server) OpenAPI(d openapi.Dialect) ([]byte, error) {
	docs, err := s.openapi.get()
	if err != nil {
		return nil, err
	}
	doc, ok := docs[d]
	if !ok {
		return nil, fmt.Errorf("no %s document", d)
	}
	return doc, nil
}

// serveOpenAPI answers GET .../openapi.json with the dialect's document.
func (s *Server) serveOpenAPI(d openapi.Dialect) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, err := s.OpenAPI(d)
		if err != nil {
			s.log.Error("OpenAPI document unavailable", "error", err)
			s.writeError(w, r, http.StatusInternalServerError, "API description unavailable")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(doc)
	}
}

// OpenAPIDocuments are the documents of a tenant configured by cfg, without
// a store (for make generate).
func OpenAPIDocuments(cfg *config.Config) (map[openapi.Dialect][]byte, error) {
	return New(cfg, nil, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).openapi.get()
}
