package catcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"userve.dev/userve/server/verify"
)

// WebhookPath is where the webhook sink takes codes.
const WebhookPath = "/codes"

// maxClockSkew is how old (or early) a signed request may be: the server
// signs "<timestamp>.<body>" so that a receiver can refuse replays.
const maxClockSkew = 5 * time.Minute

var signatureFormat = regexp.MustCompile(`^sha256=[0-9a-f]{64}$`)

// webhookBody is what verify.WebhookSender posts.
type webhookBody struct {
	Tenant    string `json:"tenant"`
	Channel   string `json:"channel"`
	To        string `json:"to"`
	Code      string `json:"code"`
	Purpose   string `json:"purpose"`
	ExpiresIn int64  `json:"expires_in"`
}

type webhook struct{ o Options }

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, why := h.receive(r)
	if status != http.StatusNoContent {
		h.o.Rejected("webhook", why)
		http.Error(w, why, status)
		return
	}
	w.WriteHeader(status)
}

// receive checks one request as a relay should, and hands the code on. It
// returns 204, or the refusal's status and reason.
func (h *webhook) receive(r *http.Request) (int, string) {
	if r.URL.Path != WebhookPath {
		return http.StatusNotFound, fmt.Sprintf("no such path %q: codes go to %s", r.URL.Path, WebhookPath)
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "codes are POSTed"
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q, want application/json", ct)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil {
		return http.StatusBadRequest, "reading the body: " + err.Error()
	}
	if len(body) > 64<<10 {
		return http.StatusRequestEntityTooLarge, "body over 64 KiB"
	}
	ts := r.Header.Get(verify.HeaderTimestamp)
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("%s %q is not unix seconds", verify.HeaderTimestamp, ts)
	}
	if skew := h.o.Now().Sub(time.Unix(sent, 0)); skew > maxClockSkew || skew < -maxClockSkew {
		return http.StatusUnauthorized, fmt.Sprintf("%s is %s away from now (at most %s): a replay?", verify.HeaderTimestamp, skew.Round(time.Second), maxClockSkew)
	}
	sig := r.Header.Get(verify.HeaderSignature)
	if !signatureFormat.MatchString(sig) {
		return http.StatusUnauthorized, fmt.Sprintf("%s %q is not sha256=<64 hex digits>", verify.HeaderSignature, sig)
	}
	var m webhookBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return http.StatusBadRequest, "body: " + err.Error()
	}
	if m.Tenant == "" || m.Code == "" || m.To == "" {
		return http.StatusBadRequest, "body lacks tenant, to or code"
	}
	secret, err := h.o.Directory.WebhookSecret(r.Context(), m.Tenant)
	if err != nil {
		return http.StatusUnauthorized, fmt.Sprintf("tenant %q: %v", m.Tenant, err)
	}
	if !verify.CheckSignature(secret, ts, body, sig) {
		return http.StatusUnauthorized, fmt.Sprintf("tenant %s: the signature does not match its webhook secret", m.Tenant)
	}
	h.o.Caught(Code{
		Tenant: m.Tenant, Channel: m.Channel, Via: "webhook", To: m.To, Code: m.Code,
		Purpose: m.Purpose, ExpiresIn: time.Duration(m.ExpiresIn) * time.Second,
	})
	return http.StatusNoContent, ""
}
