package verify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Webhook headers. The signature covers "<timestamp>.<body>" so a captured
// request cannot be replayed later with a fresh timestamp.
const (
	HeaderTimestamp = "X-Userve-Timestamp"
	HeaderSignature = "X-Userve-Signature"
)

// WebhookSender POSTs each code as JSON to the tenant's relay:
//
//	{"tenant":"ns/name","channel":"sms","to":"+8613800000000","code":"123456",
//	 "purpose":"register","expires_in":300}
//
// or a notice of an account change to a contact the account had before:
//
//	{"tenant":"ns/name","channel":"sms","to":"13800000000","purpose":"notice","notice":"phone_changed"}
//
// with X-Userve-Timestamp (unix seconds) and
// X-Userve-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + "." + body)).
// Any status outside 2xx is a failed delivery.
type WebhookSender struct {
	URL    string
	Secret []byte
	Client *http.Client // nil: a client with a 10 s timeout
	Now    func() time.Time
}

type webhookBody struct {
	Message
	ExpiresIn int64 `json:"expires_in,omitempty"` // codes only
}

func (w WebhookSender) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(webhookBody{Message: m, ExpiresIn: int64(m.TTL / time.Second)})
	if err != nil {
		return err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, body))
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		// A *url.Error quotes the URL, which may carry a token: keep only
		// its cause (an egress refusal names the address, not the URL).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// Sign returns the signature header value for a body sent at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// CheckSignature is what a receiver runs: constant-time comparison of the
// header against the expected signature.
func CheckSignature(secret []byte, ts string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(header))
}
