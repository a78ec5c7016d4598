// Package verify makes one-time verification codes and delivers them: to the
// log (development), to a tenant webhook (JSON, HMAC-SHA256 signed) or by mail
// over SMTP. Storing and checking codes is the store's business.
package verify

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"
)

// Code lengths the product allows.
const (
	MinDigits     = 4
	MaxDigits     = 6
	DefaultDigits = 6
)

// Channel says how a code travels: sms for phone numbers, mail for e-mail.
type Channel string

const (
	ChannelSMS  Channel = "sms"
	ChannelMail Channel = "mail"
)

// GenerateCode returns a uniformly random code of n decimal digits (leading
// zeros allowed), n clamped to 4..6.
func GenerateCode(n int) (string, error) {
	if n < MinDigits {
		n = MinDigits
	}
	if n > MaxDigits {
		n = MaxDigits
	}
	max := big.NewInt(1)
	for i := 0; i < n; i++ {
		max.Mul(max, big.NewInt(10))
	}
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", n, v.Int64()), nil
}

// HashCode is what the store keeps instead of the code: an HMAC keyed with a
// server secret and bound to the target, so a leaked codes collection cannot
// be brute-forced offline across the small code space.
func HashCode(key []byte, target, code string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(target))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// Message is one code to deliver, or a notice (Purpose PurposeNotice, no
// code): a change to the account told to a contact it had before.
type Message struct {
	Tenant  string        `json:"tenant"`
	Channel Channel       `json:"channel"`
	To      string        `json:"to"`
	Code    string        `json:"code,omitempty"`
	Purpose string        `json:"purpose"`          // "register", "verify", "login" or "notice"
	Notice  string        `json:"notice,omitempty"` // for a notice: one of the Notice* values
	TTL     time.Duration `json:"-"`
}

// PurposeNotice marks a Message that carries a notice instead of a code.
const PurposeNotice = "notice"

// Notices: what changed on the account the recipient belongs to.
const (
	NoticePhoneChanged = "phone_changed"
	NoticeEmailChanged = "email_changed"
	NoticeWeChatLinked = "wechat_linked"
	NoticePasswordSet  = "password_set"
)

// noticeText is a notice in words (mail and log).
func noticeText(n string) string {
	switch n {
	case NoticePhoneChanged:
		return "The phone number of your account was changed."
	case NoticeEmailChanged:
		return "The e-mail address of your account was changed."
	case NoticeWeChatLinked:
		return "A WeChat account was linked to your account."
	case NoticePasswordSet:
		return "A password was set for your account."
	}
	return "Your account was changed."
}

// Sender delivers codes.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender writes codes to the log. Development only: anyone reading the
// logs can log in as anyone who asks for a code.
type LogSender struct{ Logger *slog.Logger }

func (s LogSender) Send(_ context.Context, m Message) error {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	if m.Purpose == PurposeNotice {
		l.Info("account notice (log delivery, development only)", "channel", string(m.Channel), "to", m.To, "notice", m.Notice)
		return nil
	}
	l.Info("verification code (log delivery, development only)",
		"channel", string(m.Channel), "to", m.To, "code", m.Code, "purpose", m.Purpose,
		"expires_in", m.TTL.String())
	return nil
}

// Router picks the sender by channel; a nil entry falls back to Default (nil:
// the channel is not delivered).
type Router struct {
	SMS     Sender
	Mail    Sender
	Default Sender
}

func (r Router) Send(ctx context.Context, m Message) error {
	var s Sender
	switch m.Channel {
	case ChannelSMS:
		s = r.SMS
	case ChannelMail:
		s = r.Mail
	default:
		return fmt.Errorf("unknown channel %q", m.Channel)
	}
	if s == nil {
		s = r.Default
	}
	if s == nil {
		return ErrNoDelivery
	}
	return s.Send(ctx, m)
}

// ErrNoDelivery is a code for a channel nothing delivers.
var ErrNoDelivery = errors.New("no delivery configured for this channel")

// Delivers reports whether a code for channel c has somewhere to go.
func (r Router) Delivers(c Channel) bool {
	if r.Default != nil {
		return true
	}
	switch c {
	case ChannelSMS:
		return r.SMS != nil
	case ChannelMail:
		return r.Mail != nil
	}
	return false
}
