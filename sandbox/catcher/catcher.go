// Package catcher stands in for a tenant's code delivery in the sandbox: a
// tenant whose SMS webhook or SMTP relay cannot be reached from this machine
// (a sample's example.com host, a cluster-only name) is pointed here instead,
// and each code is printed the way the log delivery prints it.
//
// Both sinks are real receivers of what `userve serve` sends: the webhook
// sink checks the JSON body and the X-Userve-Timestamp / X-Userve-Signature
// HMAC against the tenant's own webhook secret, and the SMTP sink is an SMTP
// server (github.com/emersion/go-smtp) that takes AUTH PLAIN with the
// tenant's own username and password.
package catcher

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Code is one caught verification code.
type Code struct {
	Tenant    string // "namespace/name"; "" when the SMTP sink could not tell
	Channel   string // "sms" or "mail"
	Via       string // "webhook" or "smtp"
	To        string
	Code      string
	Purpose   string        // webhook only: "register" or "verify"
	ExpiresIn time.Duration // webhook only
	Subject   string        // mail only
}

// Directory tells the sinks what the tenants pointed at them configured.
type Directory interface {
	// WebhookSecret is the HMAC key of tenant "namespace/name"'s webhook.
	WebhookSecret(ctx context.Context, tenant string) ([]byte, error)
	// SMTPTenants are the tenants whose SMTP relay is host:port.
	SMTPTenants(ctx context.Context, host string, port int) ([]SMTPTenant, error)
}

// SMTPTenant is what a tenant sends as, and authenticates with.
type SMTPTenant struct {
	Tenant   string
	From     string
	Username string
	Password []byte
}

// Options configures Start.
type Options struct {
	// WebhookAddr and SMTPAddr are loopback host:port to listen on.
	WebhookAddr, SMTPAddr string
	Directory             Directory
	// Caught receives every code; Rejected every delivery refused, with why.
	Caught   func(Code)
	Rejected func(via, why string)
	// Now is the clock for the webhook's timestamp window.
	Now func() time.Time
}

// Catcher is the two running sinks.
type Catcher struct {
	// WebhookURL is what a tenant's spec.verification.sms.webhook.url
	// becomes; SMTPHost and SMTPPort its spec.verification.mail.smtp.
	WebhookURL string
	SMTPHost   string
	SMTPPort   int

	httpServer *http.Server
	smtpServer *smtp.Server
	wg         sync.WaitGroup
}

// Start listens on both addresses and serves until Close.
func Start(o Options) (*Catcher, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rejected == nil {
		o.Rejected = func(string, string) {}
	}
	hl, err := net.Listen("tcp", o.WebhookAddr)
	if err != nil {
		return nil, err
	}
	sl, err := net.Listen("tcp", o.SMTPAddr)
	if err != nil {
		hl.Close()
		return nil, err
	}
	smtpAddr := sl.Addr().(*net.TCPAddr)
	c := &Catcher{
		WebhookURL: "http://" + hl.Addr().String() + WebhookPath,
		SMTPHost:   smtpAddr.IP.String(),
		SMTPPort:   smtpAddr.Port,
	}
	c.httpServer = &http.Server{
		Handler:           &webhook{o: o},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	c.smtpServer = newSMTPServer(o, c.SMTPHost, c.SMTPPort)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); _ = c.httpServer.Serve(hl) }()
	go func() { defer c.wg.Done(); _ = c.smtpServer.Serve(sl) }()
	return c, nil
}

// Close stops both sinks and waits for them.
func (c *Catcher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(c.httpServer.Shutdown(ctx), c.smtpServer.Close())
	c.wg.Wait()
	return err
}

// SMTPAddr is the SMTP sink's host:port.
func (c *Catcher) SMTPAddr() string {
	return net.JoinHostPort(c.SMTPHost, strconv.Itoa(c.SMTPPort))
}
