package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/test/mongofixture"
)

// Serve (what Run does on its listener) starts the event worker with the
// server's background duties and stops it when the server stops: an
// event made while it serves is delivered, signed, and Serve returns once
// its context ends.
func TestServeRunsTheEventWorker(t *testing.T) {
	secret := []byte("events-secret-0123456789abcdef0123")
	got := make(chan string, 10)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !verify.CheckSignature(secret, r.Header.Get(verify.HeaderTimestamp), body, r.Header.Get(verify.HeaderSignature)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got <- r.Header.Get(server.HeaderEventType)
	}))
	defer rc.Close()

	uri, db := mongofixture.URI(t), mongofixture.NewDatabase(t).Name()
	us := &v1alpha1.UserService{}
	us.Name, us.Namespace = "acme", "tenants"
	us.Spec.API.Plus.Enabled = new(false)
	us.Spec.Events.Webhook = &v1alpha1.EventWebhookSpec{URL: rc.URL, SecretRef: &v1alpha1.SecretKeyRef{Name: "h", Key: "k"}}
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, MongoURI: uri, Database: db, AdminTokens: []config.AdminToken{{Name: "alice", Token: adminToken}},
		Issuer: "tenants/acme", EventsSecret: string(secret)}
	st, err := store.Connect(uri, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	s := server.New(cfg, st, server.Options{Logger: slog.New(slog.DiscardHandler), Events: server.EventsOptions{Poll: 50 * time.Millisecond},
		EventsHTTP: rc.Client()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	// Serve made the indexes; the creation's event goes out by itself.
	deadline := time.After(time.Minute)
	for !st.Ready() {
		select {
		case <-deadline:
			t.Fatal("the store never became ready")
		case <-time.After(20 * time.Millisecond): // polling a condition
		}
	}
	if err := st.CreateProfile(context.Background(), &store.Profile{Nickname: "lea"}); err != nil {
		t.Fatal(err)
	}
	select {
	case typ := <-got:
		if typ != "user.created" {
			t.Fatalf("event %q", typ)
		}
	case <-deadline:
		t.Fatal("no event delivered while serving")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}
