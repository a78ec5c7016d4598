package tenantdb

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/internal/mongouri"
)

// A tenant's URI that asks the driver for anything but SCRAM or no
// authentication, or for local files, is refused before anything is dialed:
// the fake MongoDB named by the URI receives no connection at all, and the
// pool holds no client that could dial it later.
func TestRefusedTenantURIsAreNeverDialed(t *testing.T) {
	// The token the OIDC k8s provider would read and send.
	token := filepath.Join(t.TempDir(), "token")
	const secret = "eyJhbGciOiJSUzI1NiJ9.operator-service-account-token.sig"
	if err := os.WriteFile(token, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", token)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATORNODE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "node-secret")

	f := newFakeMongo(t)
	ctx := context.Background()
	for _, tc := range []struct{ query, names string }{
		{"authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s", "MONGODB-OIDC"},
		{"authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:azure,TOKEN_RESOURCE:api%3A%2F%2Fx", "MONGODB-OIDC"},
		{"authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:gcp,TOKEN_RESOURCE:x", "MONGODB-OIDC"},
		{"authMechanism=MONGODB-AWS", "MONGODB-AWS"},
		{"authMechanism=MONGODB-X509&tls=true", "MONGODB-X509"},
		{"authMechanism=GSSAPI", "GSSAPI"},
		{"authMechanism=PLAIN", "PLAIN"},
		{"authMechanismProperties=SERVICE_NAME:x", "authMechanismProperties"},
		{"tls=true&tlsCAFile=" + token, "tlsCAFile"},
		{"tls=true&tlsCertificateKeyFile=" + token, "tlsCertificateKeyFile"},
		{"tls=true&tlsCertificateKeyFilePassword=x", "tlsCertificateKeyFilePassword"},
		{"ssl=true&sslClientCertificateKeyFile=" + token, "sslClientCertificateKeyFile"},
		{"tls=true&tlsInsecure=true", "tlsInsecure"},
		{"tls=true&tlsAllowInvalidCertificates=true", "tlsAllowInvalidCertificates"},
		{"tls=true&tlsAllowInvalidHostnames=true", "tlsAllowInvalidHostnames"},
		{"tls=true&tlsDisableOCSPEndpointCheck=true", "tlsDisableOCSPEndpointCheck"},
		{"proxyHost=127.0.0.1&proxyPort=1080", "proxyHost"},
	} {
		user := "u:p@"
		if strings.Contains(tc.query, "OIDC") || strings.Contains(tc.query, "AWS") || strings.Contains(tc.query, "X509") {
			user = ""
		}
		uri := TenantURI("mongodb://" + user + f.addr + "/?" + tc.query)
		p := New(time.Second)
		errs := []error{p.Ping(ctx, uri), p.DropDatabase(ctx, uri, "db")}
		_, err := p.ClaimDatabase(ctx, uri, "db", Owner{"shop", "acme", "u1"}, false)
		errs = append(errs, err)
		_, err = p.DatabaseOwner(ctx, uri, "db")
		errs = append(errs, err)
		for _, err := range errs {
			var r *mongouri.RefusedError
			if !errors.As(err, &r) || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("%s: err = %v, want a refusal naming %s", tc.query, err, tc.names)
			}
		}
		if p.Len() != 0 {
			t.Errorf("%s: the pool holds a client", tc.query)
		}
		p.Close(ctx)
	}
	if conns, got := f.seen(); conns != 0 || len(got) != 0 {
		t.Fatalf("the fake MongoDB got %d connections and %d bytes from refused URIs", conns, len(got))
	}

	// The fake is a real handshake partner: an allowed URI is served, and
	// the OIDC URI above, dialed without the policy (as main did), hands it
	// the token.
	p := New(2 * time.Second)
	defer p.Close(ctx)
	if err := p.Ping(ctx, TenantURI("mongodb://"+f.addr+"/")); err != nil {
		t.Fatalf("ping of the fake with an allowed URI: %v", err)
	}
	_ = p.Ping(ctx, OperatorURI("mongodb://"+f.addr+"/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s"))
	if _, got := f.seen(); !bytes.Contains(got, []byte(secret)) {
		t.Fatal("without the policy the fake did not receive the token: the refusals above prove nothing")
	}
}

// Every failure at a tenant's URI reads the same: a closed port, a port
// that serves HTTP, a server that accepts and never answers. Only the
// operator's log tells them apart.
func TestTenantURIFailuresReadTheSame(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	ctx := context.Background()
	p := New(500 * time.Millisecond)
	defer p.Close(ctx)
	var texts []string
	for _, addr := range []string{closedAddr, strings.TrimPrefix(web.URL, "http://"), silent.Addr().String()} {
		uri := TenantURI("mongodb://u:p@" + addr + "/")
		err := p.Ping(ctx, uri)
		if !errors.Is(err, ErrTenantDatabase) {
			t.Fatalf("ping %s: %v, want ErrTenantDatabase", addr, err)
		}
		_, err = p.ClaimDatabase(ctx, uri, "db", Owner{"shop", "acme", "u1"}, false)
		if !errors.Is(err, ErrTenantDatabase) {
			t.Fatalf("claim at %s: %v, want ErrTenantDatabase", addr, err)
		}
		texts = append(texts, err.Error())
	}
	for _, s := range texts[1:] {
		if s != texts[0] {
			t.Fatalf("failure texts differ: %q", texts)
		}
	}
	// The operator's own URI keeps the driver's detail, for its administrator.
	if err := p.Ping(ctx, OperatorURI("mongodb://"+closedAddr+"/")); errors.Is(err, ErrTenantDatabase) {
		t.Fatalf("the operator's URI lost its error detail: %v", err)
	}
}

// The pool keys clients by URI and owner: a client made for the operator's
// URI is never handed to a tenant's identical text, which is judged on its
// own, whatever the interleaving (30 callers at once).
func TestTenantURIsNeverReuseAnOperatorClient(t *testing.T) {
	f := newFakeMongo(t)
	ctx := context.Background()
	p := New(time.Second)
	defer p.Close(ctx)
	text := "mongodb://" + f.addr + "/?authMechanism=MONGODB-AWS"
	if _, err := p.client(OperatorURI(text)); err != nil {
		t.Fatal(err)
	}
	const n = 30
	errs := make(chan error, n)
	for range n {
		go func() { errs <- p.Ping(ctx, TenantURI(text)) }()
	}
	for range n {
		var r *mongouri.RefusedError
		if err := <-errs; !errors.As(err, &r) {
			t.Errorf("a tenant's ping of the operator's cached URI: %v, want a refusal", err)
		}
	}
	if p.Len() != 1 {
		t.Errorf("the pool holds %d clients, want only the operator's", p.Len())
	}
}
