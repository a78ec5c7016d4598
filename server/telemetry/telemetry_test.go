package telemetry_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

func TestWalletResultOf(t *testing.T) {
	for _, c := range []struct {
		err     error
		created bool
		want    telemetry.WalletResult
	}{
		{nil, true, telemetry.WalletOK},
		{nil, false, telemetry.WalletReplayed},
		{store.ErrInsufficientFunds, false, telemetry.WalletRejected},
		{fmt.Errorf("debit: %w", store.ErrBalanceLimit), false, telemetry.WalletRejected},
		{store.ErrIdempotencyMismatch, false, telemetry.WalletRejected},
		{store.ErrNotFound, false, telemetry.WalletRejected},
		{store.ErrInProgress, false, telemetry.WalletConflict},
		{errors.New("connection reset"), false, telemetry.WalletError},
	} {
		if got := telemetry.WalletResultOf(c.err, c.created); got != c.want {
			t.Errorf("WalletResultOf(%v, %v) = %s, want %s", c.err, c.created, got, c.want)
		}
	}
}

// Every label combination exists at zero; an unknown channel adds no
// series (labels come from fixed lists only); a nil *Metrics is a no-op.
func TestSeriesAreBoundedAndStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := telemetry.New(reg)
	for name, want := range map[string]int{
		telemetry.StoreErrorsName:     3,
		telemetry.LoginFailuresName:   2,
		telemetry.LoginThrottledName:  3, // account, address, checks_busy
		telemetry.CodesSentName:       2,
		telemetry.CodeFailuresName:    2,
		telemetry.WalletOperationName: 15,
	} {
		if got := testutil.CollectAndCount(reg, name); got != want {
			t.Errorf("%s: %d series, want %d", name, got, want)
		}
	}
	m.CodeSent("pigeon")
	m.CodeFailed("+8613800000000")
	if got := testutil.CollectAndCount(reg, telemetry.CodesSentName, telemetry.CodeFailuresName); got != 4 {
		t.Errorf("an unknown channel made new series: %d", got)
	}
	m.CodeSent("sms")
	m.Wallet(telemetry.WalletTransfer, telemetry.WalletOK)
	if got := testutil.ToFloat64(counter(t, reg, telemetry.CodesSentName, "sms")); got != 1 {
		t.Errorf("codes sent by sms = %v", got)
	}
	var none *telemetry.Metrics
	none.StoreError(telemetry.StoreInternal)
	none.LoginFailed(telemetry.LoginCode)
	none.LoginThrottled(telemetry.ThrottleAddress)
	none.CodeSent("sms")
	none.CodeFailed("mail")
	none.Wallet(telemetry.WalletDebit, telemetry.WalletError)
}

// counter finds the series of name with the one label value.
func counter(t *testing.T, reg *prometheus.Registry, name, value string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetLabel()[0].GetValue() == value {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(s.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no %s{%s}", name, value)
	return nil
}
