package account_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/account"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

// sink keeps the codes sent.
type sink struct {
	mu  sync.Mutex
	msg []verify.Message
}

func (s *sink) Send(_ context.Context, m verify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msg = append(s.msg, m)
	return nil
}

func newService(t *testing.T, out verify.Sender) (*account.Service, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, mongofixture.URI(t), mongofixture.NewDatabase(t).Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	us := &v1alpha1.UserService{}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, JWTKey: []byte("account-test-jwt-key-0123456789abcdef"), Issuer: "tenants/acme"}
	return account.New(st, cfg, nil, account.Options{HashCost: 4, Sender: out}), st
}

// PurposeLogin sends to any contact, known or not (no existence answer),
// while PurposeRegister and PurposeVerify keep their checks; every budget
// applies to it: 35 parallel login codes to 35 numbers from one address,
// 30 sent (the default perAddressHourly), 5 refused.
func TestSendCodePurposes(t *testing.T) {
	out := &sink{}
	svc, st := newService(t, out)
	ctx := context.Background()
	if err := st.CreateProfile(ctx, &store.Profile{Username: "known", Phone: "13900000001", PhoneVerified: true}); err != nil {
		t.Fatal(err)
	}
	known := account.Contact{Field: store.FieldPhone, Value: "13900000001"}
	unknown := account.Contact{Field: store.FieldPhone, Value: "13900000002"}
	if err := svc.SendCode(ctx, "198.51.100.1", known, account.PurposeRegister); !errors.Is(err, account.ErrContactTaken) {
		t.Fatalf("register code to a taken phone: %v", err)
	}
	if err := svc.SendCode(ctx, "198.51.100.1", unknown, account.PurposeVerify); !errors.Is(err, account.ErrNoSuchContact) {
		t.Fatalf("verify code to an unknown phone: %v", err)
	}
	for _, c := range []account.Contact{known, unknown} {
		if err := svc.SendCode(ctx, "198.51.100.1", c, account.PurposeLogin); err != nil {
			t.Fatalf("login code to %s: %v", c.Value, err)
		}
	}

	const n = 35
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = svc.SendCode(ctx, "198.51.100.2", account.Contact{Field: store.FieldPhone, Value: fmt.Sprintf("1390001%04d", i)}, account.PurposeLogin)
		}()
	}
	close(start)
	wg.Wait()
	sent, refused := 0, 0
	for _, err := range errs {
		var th *account.Throttled
		switch {
		case err == nil:
			sent++
		case errors.As(err, &th) && th.Budget == account.BudgetCodeAddress:
			refused++
		default:
			t.Fatalf("login code: %v", err)
		}
	}
	t.Logf("%d parallel login codes from one address: %d sent, %d refused", n, sent, refused)
	if sent != 30 || refused != n-30 {
		t.Fatalf("%d sent, %d refused: want 30 and %d", sent, refused, n-30)
	}
	if len(out.msg) != 2+30 || out.msg[0].Purpose != account.PurposeLogin {
		t.Fatalf("%d messages, first %+v", len(out.msg), out.msg[0])
	}
}
