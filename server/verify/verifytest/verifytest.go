// Package verifytest has in-process receivers for verification codes, for
// tests: a loopback SMTP server and a webhook endpoint that checks the HMAC
// signature.
package verifytest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/verify"
)

// Mail is one message the SMTP receiver accepted.
type Mail struct {
	From string
	To   []string
	Data string
	// AuthUser is the PLAIN identity the client authenticated as ("" if none).
	AuthUser, AuthPass string
}

// SMTPServer is a minimal SMTP receiver on 127.0.0.1 (no TLS).
type SMTPServer struct {
	Addr  string
	Host  string
	Port  int
	Mails chan Mail

	ln net.Listener
	wg sync.WaitGroup
}

// NewSMTPServer starts a receiver, closed at test cleanup.
func NewSMTPServer(t testing.TB) *SMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr)
	s := &SMTPServer{Addr: a.String(), Host: "127.0.0.1", Port: a.Port, Mails: make(chan Mail, 64), ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *SMTPServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.handle(c) }()
	}
}

func (s *SMTPServer) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = io.WriteString(c, line+"\r\n") }
	say("220 verifytest ESMTP")
	var m Mail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(verb, "EHLO"):
			say("250-verifytest")
			say("250 AUTH PLAIN")
		case strings.HasPrefix(verb, "HELO"):
			say("250 verifytest")
		case strings.HasPrefix(verb, "AUTH PLAIN"):
			arg := strings.TrimSpace(line[len("AUTH PLAIN"):])
			raw, err := base64.StdEncoding.DecodeString(arg)
			parts := strings.Split(string(raw), "\x00")
			if err != nil || len(parts) != 3 {
				say("501 bad auth")
				continue
			}
			m.AuthUser, m.AuthPass = parts[1], parts[2]
			say("235 ok")
		case strings.HasPrefix(verb, "MAIL FROM:"):
			m.From = strings.Trim(line[len("MAIL FROM:"):], " <>")
			say("250 ok")
		case strings.HasPrefix(verb, "RCPT TO:"):
			m.To = append(m.To, strings.Trim(line[len("RCPT TO:"):], " <>"))
			say("250 ok")
		case verb == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = b.String()
			s.Mails <- m
			m = Mail{AuthUser: m.AuthUser, AuthPass: m.AuthPass}
			say("250 queued")
		case verb == "RSET":
			m = Mail{}
			say("250 ok")
		case verb == "NOOP":
			say("250 ok")
		case verb == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// Next waits for the next mail.
func (s *SMTPServer) Next(t testing.TB) Mail {
	t.Helper()
	select {
	case m := <-s.Mails:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail arrived within 10s")
		return Mail{}
	}
}

// Hook is one webhook delivery, signature checked.
type Hook struct {
	Body      map[string]any
	Raw       []byte
	Timestamp string
	SignedOK  bool
}

// Webhook is an httptest server receiving code deliveries.
type Webhook struct {
	URL    string
	Hooks  chan Hook
	Status int // answer status; 0 means 204
	mu     sync.Mutex
}

// NewWebhook starts a receiver checking signatures with secret.
func NewWebhook(t testing.TB, secret []byte) *Webhook {
	t.Helper()
	w := &Webhook{Hooks: make(chan Hook, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		h := Hook{Raw: raw, Timestamp: r.Header.Get(verify.HeaderTimestamp)}
		h.SignedOK = verify.CheckSignature(secret, h.Timestamp, raw, r.Header.Get(verify.HeaderSignature))
		_ = json.Unmarshal(raw, &h.Body)
		w.Hooks <- h
		w.mu.Lock()
		status := w.Status
		w.mu.Unlock()
		if status == 0 {
			status = http.StatusNoContent
		}
		rw.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// SetStatus makes the receiver answer with status from now on.
func (w *Webhook) SetStatus(status int) {
	w.mu.Lock()
	w.Status = status
	w.mu.Unlock()
}

// Next waits for the next delivery.
func (w *Webhook) Next(t testing.TB) Hook {
	t.Helper()
	select {
	case h := <-w.Hooks:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook call within 10s")
		return Hook{}
	}
}
