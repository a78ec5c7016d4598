package verify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// SMTPSender mails codes through a relay. It upgrades with STARTTLS when the
// server offers it; it authenticates (PLAIN) only when Username is set, and
// net/smtp refuses PLAIN over an unencrypted link except to localhost.
type SMTPSender struct {
	Host     string
	Port     int
	From     string
	Username string
	Password string
	// TLSConfig for STARTTLS; nil means verify against Host.
	TLSConfig *tls.Config
	Now       func() time.Time
	// Dial opens the connection to the relay (a pooled tenant's goes
	// through its egress guard); nil means net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (s SMTPSender) Send(ctx context.Context, m Message) error {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(s.From, "\r\n") {
		return errors.New("smtp: address contains a line break")
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	dial := s.Dial
	if dial == nil {
		d := net.Dialer{Timeout: 10 * time.Second}
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := s.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(s.message(m)); err != nil {
		return fmt.Errorf("smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp end of data: %w", err)
	}
	return c.Quit()
}

func (s SMTPSender) message(m Message) []byte {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := "userve.local"
	if at := strings.LastIndexByte(s.From, '@'); at >= 0 {
		domain = s.From[at+1:]
	}
	mins := int(m.TTL.Round(time.Minute) / time.Minute)
	if mins < 1 {
		mins = 1
	}
	var b strings.Builder
	b.WriteString("From: " + s.From + "\r\n")
	b.WriteString("To: " + m.To + "\r\n")
	subject := "Your verification code"
	if m.Purpose == PurposeNotice {
		subject = "Your account was changed"
	}
	b.WriteString("Subject: " + mime.QEncoding.Encode("utf-8", subject) + "\r\n")
	b.WriteString("Date: " + now().UTC().Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: <" + hex.EncodeToString(id[:]) + "@" + domain + ">\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("\r\n")
	if m.Purpose == PurposeNotice {
		b.WriteString(noticeText(m.Notice) + "\r\n")
		b.WriteString("If it was not you, sign in another way and secure your account, or contact the service.\r\n")
		return []byte(b.String())
	}
	fmt.Fprintf(&b, "Your verification code is %s. It expires in %d minute(s).\r\n", m.Code, mins)
	b.WriteString("If you did not ask for it, ignore this message.\r\n")
	return []byte(b.String())
}
