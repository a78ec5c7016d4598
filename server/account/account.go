// Package account holds the end-user account rules every dialect shares:
// the attempt limiter (how many wrong passwords and codes a client address
// and an account may try, limiter.go), the credential reader (password
// check with rehash, code check, login; credentials.go) and the issuing of
// verification codes with their budgets (codes.go). Dialect packages
// (server/plus, the SDK dialect) only shape HTTP around it: the limits and
// their keys are written here once, so a wrong password counts the same
// whichever dialect it came through.
//
// Errors are sentinels and *Throttled; each dialect words them its way.
package account

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"log/slog"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
	"userve.dev/userve/server/verify"
)

// The attempt-limit policy (docs/plus.md, "Attempt limits"). Code-sending
// budgets are the tenant's own (spec.verification.limits).
//
// Failures count per account and client address, so that one address can
// lock an account only for itself: the owner elsewhere still logs in. A
// higher ceiling per account across addresses stops many addresses from
// brute-forcing together, and a budget per address stops one address from
// sweeping many accounts.
const (
	// FailureWindow is the fixed window the failure budgets count in.
	FailureWindow = 15 * time.Minute
	// FailuresPerAccountAddress is one address's budget of failed logins,
	// password and code checks against one account per window.
	FailuresPerAccountAddress = 5
	// FailuresPerAccount is an account's ceiling of failures per window,
	// from all addresses together (five addresses' worth).
	FailuresPerAccount = 25
	// FailuresPerAddress is a client address's budget of failures per
	// window, whatever accounts they were for (code checks of password
	// retrieval and WeChat logins included).
	FailuresPerAddress = 50
	// MaxCodeAttempts is how many guesses one code is judged for; then it
	// is dead.
	MaxCodeAttempts = 5
	// ResendInterval is the least time between two codes to one target.
	ResendInterval = 60 * time.Second
	// CodeDigits is the length of the codes sent.
	CodeDigits = 6
	// LookupWindow and LookupsPerCaller bound how many users one signed-in
	// caller may look up by phone or e-mail (GET /users/{user}).
	LookupWindow     = time.Hour
	LookupsPerCaller = 30
	// SearchWindow and SearchesPerAddress bound substring searches of
	// users by name (GET /users?name=), which scan the users: per client
	// address, whoever is signed in.
	SearchWindow       = time.Minute
	SearchesPerAddress = 30
)

// Errors of the credential reader and of code issuing.
var (
	// ErrWrongPassword: the password does not match, or the account does
	// not exist (the two are never told apart).
	ErrWrongPassword = errors.New("login or password is wrong")
	// ErrWrongCode: the code is wrong, expired, or none was sent.
	ErrWrongCode = errors.New("verification code is wrong or has expired")
	// ErrCodeUsed: the code was used already (no guess was judged).
	ErrCodeUsed = errors.New("verification code was used already")
	// ErrCodeSpent: the code has had MaxCodeAttempts tries.
	ErrCodeSpent = errors.New("verification code has had all its tries")
	// ErrContactTaken: a registration code for a contact a user has.
	ErrContactTaken = errors.New("contact is already taken")
	// ErrNoSuchContact: a code for a contact no user has.
	ErrNoSuchContact = errors.New("no user has this contact")
	// ErrNoDelivery: the tenant delivers no codes on this channel.
	ErrNoDelivery = errors.New("verification codes cannot be sent on this channel")
	// ErrUndelivered: the delivery failed; the code was withdrawn.
	ErrUndelivered = errors.New("verification code could not be delivered")
)

// Options are the optional dependencies of New.
type Options struct {
	// HashCost is the bcrypt cost; 0 means bcrypt's default (10).
	HashCost int
	// CheckMemory bounds the memory password checks hold at once in this
	// process (auth's check gate); 0 means auth.DefaultCheckMemory.
	CheckMemory int64
	// CheckWait is the longest a check waits for that memory before
	// auth.ErrBusy; 0 means auth.DefaultCheckWait.
	CheckWait time.Duration
	// SharedCheckMemory is a process-wide check budget this tenant's
	// checks also draw from (a pool's); nil: none.
	SharedCheckMemory *auth.SharedCheckMemory
	// Sender replaces the delivery configured in spec.verification.
	Sender verify.Sender
	// Metrics records logins, throttles and codes; nil records nothing.
	Metrics *telemetry.Metrics
	// Egress guards the configured deliveries' connections (the SMS
	// webhook and SMTP); nil lets them go anywhere.
	Egress *egress.Guard
}

// Service is one tenant's accounts: limiter, credential reader, codes.
// One per process serves every dialect.
type Service struct {
	store   *store.Store
	log     *slog.Logger
	metrics *telemetry.Metrics
	hasher  *auth.Hasher
	sender  verify.Sender
	issuer  string
	codeKey []byte
	codeTTL time.Duration
	limits  v1alpha1.CodeLimits
	touched touches // sessions' last uses written (sessions.go)
	// loginHistory is how long login attempts are kept (sessions.go).
	loginHistory time.Duration
}

// New builds the accounts of the tenant cfg describes.
func New(st *store.Store, cfg *config.Config, log *slog.Logger, opts Options) *Service {
	if log == nil {
		log = slog.Default()
	}
	spec := cfg.Spec()
	codeTTL := v1alpha1.DefaultCodeTTL
	if c := spec.Verification.CodeTTL; c != nil && c.Duration > 0 {
		codeTTL = c.Duration
	}
	s := &Service{
		store: st, log: log, metrics: opts.Metrics,
		hasher: auth.NewHasherWith(auth.HasherOptions{Cost: opts.HashCost, CheckMemory: opts.CheckMemory, CheckWait: opts.CheckWait,
			Shared: opts.SharedCheckMemory}),
		sender:  opts.Sender,
		issuer:  cfg.Issuer,
		codeKey: deriveKey(cfg.JWTKey, "userve verification codes"),
		codeTTL: codeTTL,
		limits:  spec.Verification.Limits,

		loginHistory: v1alpha1.DefaultLoginHistory,
	}
	if h := spec.API.Plus.LoginHistory; h != nil && h.Duration > 0 {
		s.loginHistory = h.Duration
	}
	if s.sender == nil {
		s.sender = senderFromConfig(cfg, log, opts.Egress)
	}
	return s
}

// webhookTimeout bounds one code delivery to the SMS webhook.
const webhookTimeout = 10 * time.Second

// deriveKey separates the code-hashing key from the signing key.
func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// senderFromConfig delivers phone codes by webhook and e-mail codes by
// SMTP when configured, their connections through guard; the rest goes to
// the log if spec.verification.logCodes says so, and nowhere otherwise.
func senderFromConfig(cfg *config.Config, log *slog.Logger, guard *egress.Guard) verify.Sender {
	v := cfg.Spec().Verification
	var r verify.Router
	if v.LogCodes {
		r.Default = verify.LogSender{Logger: log}
	}
	if v.SMS != nil && v.SMS.Webhook != nil && v.SMS.Webhook.URL != "" {
		r.SMS = verify.WebhookSender{URL: v.SMS.Webhook.URL, Secret: []byte(cfg.WebhookSecret), Client: guard.HTTPClient(webhookTimeout)}
	}
	if v.Mail != nil && v.Mail.SMTP != nil && v.Mail.SMTP.Host != "" {
		m := v.Mail.SMTP
		port := int(m.Port)
		if port == 0 {
			port = v1alpha1.DefaultSMTPPort
		}
		r.Mail = verify.SMTPSender{Host: m.Host, Port: port, From: m.From, Username: m.Username, Password: cfg.SMTPPassword,
			Dial: guard.DialContext}
	}
	return r
}
