package catcher

import (
	"bytes"
	"context"
	"crypto/subtle"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// codeInMail finds the code in the text verify.SMTPSender writes
// ("Your verification code is 123456. It expires in ...").
var codeInMail = regexp.MustCompile(`verification code is ([^\s.]+)`)

// newSMTPServer is a plain-text SMTP server on loopback. It offers no
// STARTTLS (the sender would verify a certificate nobody can issue for
// 127.0.0.1) and allows AUTH PLAIN without TLS, which the sender's net/smtp
// does only towards localhost.
func newSMTPServer(o Options, host string, port int) *smtp.Server {
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{o: o, host: host, port: port}, nil
	}))
	s.Domain = "userve-dev.sandbox"
	s.AllowInsecureAuth = true
	s.MaxMessageBytes = 1 << 20
	s.MaxRecipients = 10
	s.ReadTimeout = 30 * time.Second
	s.WriteTimeout = 30 * time.Second
	return s
}

type smtpSession struct {
	o          Options
	host       string
	port       int
	tenant     string // set by AUTH
	authed     bool
	from       string
	recipients []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth takes the username and password of a tenant pointed at this sink, as
// its real relay would.
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		tenants, err := s.o.Directory.SMTPTenants(context.Background(), s.host, s.port)
		if err != nil {
			return err
		}
		for _, t := range tenants {
			if t.Username == username && subtle.ConstantTimeCompare(t.Password, []byte(password)) == 1 {
				s.tenant, s.authed = t.Tenant, true
				return nil
			}
		}
		s.o.Rejected("smtp", "AUTH PLAIN as "+username+": no tenant pointed here has that username and password")
		return smtp.ErrAuthFailed
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		// No AUTH: the tenant is the one that sends as this address and has
		// no username.
		tenants, err := s.o.Directory.SMTPTenants(context.Background(), s.host, s.port)
		if err != nil {
			return err
		}
		for _, t := range tenants {
			if t.Username == "" && strings.EqualFold(t.From, from) {
				s.tenant = t.Tenant
			}
		}
		if s.tenant == "" {
			s.o.Rejected("smtp", "MAIL FROM "+from+" without AUTH: no tenant without a username sends as that address")
			return smtp.ErrAuthRequired
		}
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.recipients = append(s.recipients, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		s.o.Rejected("smtp", "a message that does not parse: "+err.Error())
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "message does not parse: " + err.Error()}
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return err
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	code := ""
	if m := codeInMail.FindSubmatch(body); m != nil {
		code = string(m[1])
	} else {
		code = "(none found) " + firstLine(string(body))
	}
	for _, to := range s.recipients {
		s.o.Caught(Code{Tenant: s.tenant, Channel: "mail", Via: "smtp", To: to, Code: code, Subject: subject})
	}
	return nil
}

func (s *smtpSession) Reset() { s.from, s.recipients = "", nil }

func (s *smtpSession) Logout() error { return nil }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}
