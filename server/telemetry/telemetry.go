// Package telemetry holds the tenant server's domain metrics: store errors,
// logins, verification codes and wallet operations. The HTTP metrics
// (requests and latency by route template) live with the middleware in
// package server; both go to the server's own registry and its /metrics.
//
// Cardinality is bounded by construction: every label takes one of the
// values listed here (never a path, user id, login, phone or address), and
// every combination is created at zero so that rate() and alerts see a
// series before the first event. The tenant is not a label of these series:
// the PodMonitor adds namespace and tenant from the pod (docs/observability.md).
//
// A nil *Metrics records nothing, so handlers built without one (unit
// tests) need no checks.
package telemetry

import (
	"errors"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server/store"
)

// StoreErrorKind says how a store call failed, and so what the client got.
type StoreErrorKind string

const (
	// StoreUnavailable: MongoDB away or busy; the client got a 503.
	StoreUnavailable StoreErrorKind = "unavailable"
	// StoreNotReady: the indexes are not created yet; the client got a 503.
	StoreNotReady StoreErrorKind = "not_ready"
	// StoreInternal: an unexpected error; the client got a 500.
	StoreInternal StoreErrorKind = "internal"
)

// LoginMethod is what a failed login tried.
type LoginMethod string

const (
	LoginPassword LoginMethod = "password"
	LoginCode     LoginMethod = "code"
)

// ThrottleKind is the budget that refused an attempt: with a 429, or for
// ThrottleChecksBusy a 503.
type ThrottleKind string

const (
	// ThrottleAccount: too many failures for one account.
	ThrottleAccount ThrottleKind = "account"
	// ThrottleAddress: too many failures from one client address.
	ThrottleAddress ThrottleKind = "address"
	// ThrottleChecksBusy: the replica's password checks stayed at their
	// memory budget for the whole bounded wait (server/auth's gate).
	ThrottleChecksBusy ThrottleKind = "checks_busy"
)

// Channel is how a verification code travels (verify.Channel's values).
type Channel string

const (
	ChannelSMS  Channel = "sms"
	ChannelMail Channel = "mail"
)

// WalletOperation is a kind of money movement.
type WalletOperation string

const (
	// WalletTransfer: an end-user transfer (POST /api/v2/plus-pay/transfer).
	WalletTransfer WalletOperation = "transfer"
	// WalletCredit and WalletDebit: management transactions
	// (POST /userve/v1/wallet/transactions/).
	WalletCredit WalletOperation = "credit"
	WalletDebit  WalletOperation = "debit"
)

// WalletResult is how a wallet operation ended.
type WalletResult string

const (
	WalletOK       WalletResult = "ok"       // money moved
	WalletReplayed WalletResult = "replayed" // same idempotency key again: nothing moved
	WalletRejected WalletResult = "rejected" // refused: balance, limit, unknown user, key reused
	WalletConflict WalletResult = "conflict" // the same key is being applied right now (409)
	WalletError    WalletResult = "error"    // the store failed (503/500)
)

// Metric names, used by the alerts and dashboards too.
const (
	StoreErrorsName     = "userve_store_errors_total"
	LoginFailuresName   = "userve_login_failures_total"
	LoginThrottledName  = "userve_login_throttled_total"
	CodesSentName       = "userve_codes_sent_total"
	CodeFailuresName    = "userve_code_delivery_failures_total"
	WalletOperationName = "userve_wallet_operations_total"
	EgressRefusedName   = "userve_egress_refused_total"
)

// Metrics are the domain counters of one tenant server.
type Metrics struct {
	storeErrors    *prometheus.CounterVec
	loginFailures  *prometheus.CounterVec
	loginThrottled *prometheus.CounterVec
	codesSent      *prometheus.CounterVec
	codeFailures   *prometheus.CounterVec
	wallet         *prometheus.CounterVec
	egressRefused  *prometheus.CounterVec
}

// New creates the counters on reg, every label combination at zero.
func New(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		storeErrors: counter(StoreErrorsName,
			"Store calls that failed, by kind: unavailable and not_ready answered 503, internal answered 500.", "kind"),
		loginFailures: counter(LoginFailuresName,
			"End-user logins refused for a wrong password or code, by method.", "method"),
		loginThrottled: counter(LoginThrottledName,
			"Login and password attempts refused, by the budget that ran out: account or address (429), checks_busy (503, the replica's password-check memory).", "kind"),
		codesSent: counter(CodesSentName,
			"Verification codes handed to their delivery channel, by channel.", "channel"),
		codeFailures: counter(CodeFailuresName,
			"Verification codes whose delivery failed (the client got a 503), by channel.", "channel"),
		wallet: counter(WalletOperationName,
			"Wallet operations by operation (transfer, credit, debit) and result.", "operation", "result"),
		egressRefused: counter(EgressRefusedName,
			"Outbound connections (code delivery, WeChat, event webhooks) the egress guard refused, by the address class refused.", "class"),
	}
	for _, k := range []StoreErrorKind{StoreUnavailable, StoreNotReady, StoreInternal} {
		m.storeErrors.WithLabelValues(string(k))
	}
	for _, l := range []LoginMethod{LoginPassword, LoginCode} {
		m.loginFailures.WithLabelValues(string(l))
	}
	for _, k := range []ThrottleKind{ThrottleAccount, ThrottleAddress, ThrottleChecksBusy} {
		m.loginThrottled.WithLabelValues(string(k))
	}
	for _, c := range []Channel{ChannelSMS, ChannelMail} {
		m.codesSent.WithLabelValues(string(c))
		m.codeFailures.WithLabelValues(string(c))
	}
	for _, op := range []WalletOperation{WalletTransfer, WalletCredit, WalletDebit} {
		for _, r := range []WalletResult{WalletOK, WalletReplayed, WalletRejected, WalletConflict, WalletError} {
			m.wallet.WithLabelValues(string(op), string(r))
		}
	}
	for _, c := range egress.Refused {
		m.egressRefused.WithLabelValues(string(c))
	}
	reg.MustRegister(m.storeErrors, m.loginFailures, m.loginThrottled, m.codesSent, m.codeFailures, m.wallet, m.egressRefused)
	return m
}

// StoreError counts a failed store call.
func (m *Metrics) StoreError(kind StoreErrorKind) {
	if m != nil {
		m.storeErrors.WithLabelValues(string(kind)).Inc()
	}
}

// LoginFailed counts a login refused for wrong credentials.
func (m *Metrics) LoginFailed(method LoginMethod) {
	if m != nil {
		m.loginFailures.WithLabelValues(string(method)).Inc()
	}
}

// LoginThrottled counts a 429 of the login or password budgets.
func (m *Metrics) LoginThrottled(kind ThrottleKind) {
	if m != nil {
		m.loginThrottled.WithLabelValues(string(kind)).Inc()
	}
}

// CodeSent counts a delivered code; an unknown channel is not counted.
func (m *Metrics) CodeSent(channel string) {
	if m != nil && knownChannel(channel) {
		m.codesSent.WithLabelValues(channel).Inc()
	}
}

// CodeFailed counts a code whose delivery failed.
func (m *Metrics) CodeFailed(channel string) {
	if m != nil && knownChannel(channel) {
		m.codeFailures.WithLabelValues(channel).Inc()
	}
}

func knownChannel(c string) bool { return c == string(ChannelSMS) || c == string(ChannelMail) }

// EgressRefused counts an outbound connection the egress guard refused.
func (m *Metrics) EgressRefused(class egress.Class) {
	if m != nil && slices.Contains(egress.Refused, class) {
		m.egressRefused.WithLabelValues(string(class)).Inc()
	}
}

// Wallet counts a wallet operation.
func (m *Metrics) Wallet(op WalletOperation, result WalletResult) {
	if m != nil {
		m.wallet.WithLabelValues(string(op), string(result)).Inc()
	}
}

// WalletResultOf classifies the outcome of a ledger call (store.Transfer,
// store.Adjust): the store's refusals, a key in flight, a replay, a failure.
func WalletResultOf(err error, created bool) WalletResult {
	switch {
	case err == nil && !created:
		return WalletReplayed
	case err == nil:
		return WalletOK
	case errors.Is(err, store.ErrInProgress):
		return WalletConflict
	case errors.Is(err, store.ErrInsufficientFunds), errors.Is(err, store.ErrBalanceLimit),
		errors.Is(err, store.ErrIdempotencyMismatch), errors.Is(err, store.ErrNotFound):
		return WalletRejected
	}
	return WalletError
}
