package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"userve.dev/userve/openapi"
	"userve.dev/userve/server/config"
)

// openAPIDocs are the tenant's two descriptions, built once from the router
// and the spec (they change only with the configuration, which restarts the
// process).
type openAPIDocs struct {
	docs map[openapi.Dialect][]byte
	err  error
}

// buildOpenAPI describes the routes r holds.
func buildOpenAPI(cfg *config.Config, r *mux.Router) openAPIDocs {
	routes, err := routeTable(r)
	if err != nil {
		return openAPIDocs{err: err}
	}
	out := openAPIDocs{docs: map[openapi.Dialect][]byte{}}
	for _, d := range []openapi.Dialect{openapi.Management, openapi.EndUser} {
		doc, err := openapi.Build(d, *cfg.Spec(), routes)
		if err != nil {
			return openAPIDocs{err: err}
		}
		out.docs[d] = doc
	}
	return out
}

// routeTable lists the router's routes, one per method.
func routeTable(r *mux.Router) ([]openapi.Route, error) {
	var routes []openapi.Route
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // a prefix route (the misconfigured end-user API) has no template
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
	if s.openapi.err != nil {
		return nil, s.openapi.err
	}
	doc, ok := s.openapi.docs[d]
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
	s := New(cfg, nil, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if s.openapi.err != nil {
		return nil, s.openapi.err
	}
	return s.openapi.docs, nil
}
