package controllers

import (
	"bytes"
	"net/http"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsAuthFilter is controller-runtime's
// filters.WithAuthenticationAndAuthorization (TokenReview, then
// SubjectAccessReview for GET /metrics), with one correction: a token the
// API server rejects is a 401, as kube-apiserver and kube-rbac-proxy answer
// it. controller-runtime answers any authentication error with 500
// "Authentication failed", and the API server's rejection of a forged or
// expired token reaches it as such an error; a scraper with a bad token is
// then told the server is broken. A 500 the filter writes for anything else
// (an authorization error) passes unchanged.
func metricsAuthFilter(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	inner, err := filters.WithAuthenticationAndAuthorization(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return func(log logr.Logger, handler http.Handler) (http.Handler, error) {
		h, err := inner(log, handler)
		if err != nil {
			return nil, err
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			aw := &authFailureWriter{ResponseWriter: w}
			h.ServeHTTP(aw, r)
			aw.flush()
		}), nil
	}, nil
}

// authenticationFailedBody is what controller-runtime's filter writes
// (http.Error) when authentication fails with an error.
var authenticationFailedBody = []byte("Authentication failed\n")

// authFailureWriter holds back a 500 until its body shows whether it is the
// filter's authentication failure, which it turns into a 401.
type authFailureWriter struct {
	http.ResponseWriter
	held bool // a 500 is held back
}

func (w *authFailureWriter) WriteHeader(code int) {
	if code == http.StatusInternalServerError {
		w.held = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *authFailureWriter) Write(b []byte) (int, error) {
	if w.held {
		w.held = false
		if bytes.Equal(b, authenticationFailedBody) {
			http.Error(w.ResponseWriter, "Unauthorized", http.StatusUnauthorized)
			return len(b), nil
		}
		w.ResponseWriter.WriteHeader(http.StatusInternalServerError)
	}
	return w.ResponseWriter.Write(b)
}

// flush sends a held 500 that no body followed.
func (w *authFailureWriter) flush() {
	if w.held {
		w.held = false
		w.ResponseWriter.WriteHeader(http.StatusInternalServerError)
	}
}
