package plus_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// Account protection under parallel requests (issue 12, part 3). Each test
// fires its burst at once and counts what was judged and what was refused.

// burst sends n requests at once (after a common start signal) and returns
// the responses by index.
func burst(n int, send func(i int) resp) []resp {
	out := make([]resp, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			out[i] = send(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out
}

// statuses counts responses by status.
func statuses(rs []resp) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// accountWithThreeNames makes a user reachable by name, e-mail and phone.
func (tn *tenant) accountWithThreeNames(rp *replica, name, email, phone, password string) *store.Profile {
	tn.t.Helper()
	hash, err := auth.NewHasher(4).Hash(password)
	if err != nil {
		tn.t.Fatal(err)
	}
	p := &store.Profile{Username: name, Nickname: name, PasswordHash: hash, Email: email, EmailVerified: true, Phone: phone, PhoneVerified: true}
	if err := rp.store.CreateProfile(context.Background(), p); err != nil {
		tn.t.Fatal(err)
	}
	return p
}

// 36 parallel wrong passwords for one account, reached by its name, e-mail
// and phone in turn: at most 5 are judged (422), the rest are 429, and the
// account then waits even with the right password. (Before: all 36 judged,
// since the limit was read before bcrypt and counted after it, per login
// string.)
func TestParallelWrongPasswordsShareOneAccountBudget(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.accountWithThreeNames(rp, "target", "target@example.com", "13500000001", "right-password")
	tn.quickUser(rp, "bystander")
	logins := []string{"target", "target@example.com", "13500000001"}
	const n = 36
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": logins[i%3], "password": fmt.Sprintf("wrong-%02d", i)})
	})
	got := statuses(rs)
	t.Logf("%d parallel wrong passwords (name/e-mail/phone mixed): %d judged (422), %d refused (429)", n, got[422], got[429])
	if got[422] > 5 || got[422] < 1 || got[422]+got[429] != n {
		t.Fatalf("statuses %v: want at most 5 judged (422) and the rest 429", got)
	}
	for _, r := range rs {
		if r.status == http.StatusTooManyRequests && (r.header.Get("Retry-After") == "" || !strings.Contains(r.obj(t)["message"].(string), "this account")) {
			t.Fatalf("429 without Retry-After or account message: %s", r.body)
		}
	}
	// Every name of the account is locked, the right password too.
	for _, login := range logins {
		if got[422] == 5 {
			expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": login, "password": "right-password"}), http.StatusTooManyRequests)
		}
	}
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "bystander", "password": "secret-bystander"}), http.StatusOK)
	tn.clock.Add(15 * time.Minute)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "target@example.com", "password": "right-password"}), http.StatusOK)
}

// Unknown logins have budgets too (per login string), answered exactly as a
// known account's: 422 while judged, 429 after.
func TestParallelGuessesForAnUnknownLogin(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	const n = 30
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "nobody_here", "password": fmt.Sprintf("guess-%02d", i)})
	})
	got := statuses(rs)
	t.Logf("%d parallel logins for an unknown name: %d judged (422), %d refused (429)", n, got[422], got[429])
	if got[422] > 5 || got[422]+got[429] != n {
		t.Fatalf("statuses %v", got)
	}
}

// The caller's own password check (PUT /user/password) takes the same
// account budget: 30 parallel wrong old passwords, at most 5 judged.
func TestParallelWrongOldPasswords(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	_, token := tn.quickUser(rp, "changer")
	const n = 30
	rs := burst(n, func(i int) resp {
		return rp.call("PUT", "/api/v2/user/password", token, map[string]any{
			"old_password": fmt.Sprintf("wrong-%02d", i), "password": "new-secret", "password_confirmation": "new-secret"})
	})
	got := statuses(rs)
	t.Logf("%d parallel wrong old passwords: %d judged (422), %d refused (429)", n, got[422], got[429])
	if got[422] > 5 || got[422]+got[429] != n {
		t.Fatalf("statuses %v", got)
	}
	// The account budget is shared with logins.
	if got[422] == 5 {
		expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "changer", "password": "secret-changer"}), http.StatusTooManyRequests)
	}
}

// The right code hidden among 40 parallel guesses, four times over: at most
// 5 guesses are ever judged per code, so the right one gets in only when it
// is among them, and after the burst the code is dead, the right code too.
// (Before: the attempt was counted after the comparison; the right code got
// in in most bursts.)
func TestParallelCodeGuesses(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	const phone = "13600000077"
	tn.accountWithThreeNames(rp, "coded", "coded@example.com", phone, "secret-coded")
	const n, bursts = 40, 4
	accepted := 0
	for b := 0; b < bursts; b++ {
		// A new failure window: the address's budget (50) is not this
		// test's subject, the code's tries are.
		tn.clock.Add(15 * time.Minute)
		expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": phone}), http.StatusAccepted)
		code := tn.outbox.code(t, phone)
		right := rand.IntN(n)
		guess := func(i int) string {
			if i == right {
				return code
			}
			return fmt.Sprintf("%06d", (atoi(code)+1+i)%1000000)
		}
		retrieve := func(c string) resp {
			return rp.call("PUT", "/api/v2/user/retrieve-password", "", map[string]any{
				"verifiable_type": "sms", "phone": phone, "verifiable_code": c, "password": "new-secret-" + c})
		}
		rs := burst(n, func(i int) resp { return retrieve(guess(i)) })
		got := statuses(rs)
		// A guess that arrives after the right code got in meets a used
		// code: 422 too, but nothing is judged (it takes no try).
		afterUse := 0
		for _, r := range rs {
			if r.status == http.StatusUnprocessableEntity && strings.Contains(string(r.body), "was used already") {
				afterUse++
			}
		}
		judged := got[204] + got[422] - afterUse
		t.Logf("burst %d: the right code among %d parallel guesses: %d judged (%d accepted, %d wrong), %d after its use, %d refused (429)",
			b+1, n, judged, got[204], got[422]-afterUse, afterUse, got[429])
		if judged > 5 || got[204] > 1 || (afterUse > 0 && got[204] == 0) || got[204]+got[422]+got[429] != n {
			t.Fatalf("burst %d: statuses %v (%d after its use): want at most 5 judged, the rest 429", b+1, got, afterUse)
		}
		accepted += got[204]
		if rs[right].status == http.StatusNoContent {
			continue
		}
		// Dead: the right code is refused afterwards.
		r := expect(t, retrieve(code), http.StatusTooManyRequests)
		if !strings.Contains(r.obj(t)["message"].(string), "request a new one") {
			t.Fatalf("dead code answer = %s", r.body)
		}
		tries, err := mongofixture.Client(t).Database(tn.db).Collection(store.ColCodes).CountDocuments(context.Background(),
			bson.D{{Key: "kind", Value: "try"}, {Key: "gen", Value: bson.D{{Key: "$regex", Value: "^phone:" + phone}}}})
		if err != nil {
			t.Fatal(err)
		}
		if tries > int64(5*(b+1)) {
			t.Fatalf("%d tries recorded after %d bursts", tries, b+1)
		}
	}
	t.Logf("the right code was accepted in %d of %d bursts", accepted, bursts)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// 40 parallel requests for codes to unknown numbers from one address: the
// address limit (30 an hour) applies before the existence check, so 10 are
// 429. (Before: 40 × 422, never a 429.)
func TestCodeRequestsForUnknownNumbersMeetTheAddressLimit(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	const n = 40
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "1390000" + pad4(i)})
	})
	got := statuses(rs)
	t.Logf("%d parallel code requests for unknown numbers from one address: %d answered (422), %d refused (429)", n, got[422], got[429])
	if got[422] != 30 || got[429] != 10 {
		t.Fatalf("statuses %v: want 30 × 422 and 10 × 429", got)
	}
}

// IPv6 clients count per /64: 35 parallel requests from 35 addresses of one
// /64 share the 30 of one address; another /64 has its own.
func TestIPv6AddressesCountPer64(t *testing.T) {
	tn := newTenant(t)
	tn.spec.API.Plus.TrustedProxies = []string{"127.0.0.0/8"} // httptest's peer, the "ingress"
	rp := tn.replica()
	send := func(i int, client string) resp {
		return rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "1370000" + pad4(i)}, "X-Forwarded-For: "+client)
	}
	const n = 35
	rs := burst(n, func(i int) resp { return send(i, fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1)) })
	got := statuses(rs)
	t.Logf("%d parallel code requests from %d addresses of one /64: %d sent (202), %d refused (429)", n, n, got[202], got[429])
	if got[202] != 30 || got[429] != 5 {
		t.Fatalf("statuses %v: want 30 × 202 and 5 × 429", got)
	}
	expect(t, send(100, "2001:db8:1:3::1"), http.StatusAccepted)     // the next /64
	expect(t, send(101, "::ffff:198.51.100.7"), http.StatusAccepted) // IPv4-mapped: an IPv4 address
	expect(t, send(102, "198.51.100.8"), http.StatusAccepted)
}

// spec.verification.limits.perTargetDaily: a target gets at most that many
// codes a day. Parallel requests to one target send one code (the resend
// interval) and give their day's slots back, so the cap counts codes sent.
func TestPerTargetDailyCap(t *testing.T) {
	tn := newTenant(t)
	tn.spec.Verification.Limits = v1alpha1.CodeLimits{PerTargetDaily: 3}
	tn.spec.API.Plus.TrustedProxies = []string{"127.0.0.0/8"} // one address each, so the address limit stays out of it
	rp := tn.replica()
	sendFrom := func(i int) resp {
		return rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "daily@example.com"},
			fmt.Sprintf("X-Forwarded-For: 198.51.100.%d", i+1))
	}
	send := func() resp { return sendFrom(200) }
	const n = 30
	rs := burst(n, sendFrom)
	got := statuses(rs)
	t.Logf("%d parallel code requests for one target: %d sent, %d too soon (403), %d over the day's cap (429)", n, got[202], got[403], got[429])
	if got[202] != 1 || got[202]+got[403]+got[429] != n {
		t.Fatalf("statuses %v: want exactly one code sent", got)
	}
	for i := 2; i <= 3; i++ {
		tn.clock.Add(61 * time.Second)
		expect(t, send(), http.StatusAccepted)
	}
	tn.clock.Add(61 * time.Second)
	r := expect(t, send(), http.StatusTooManyRequests)
	if !strings.Contains(r.obj(t)["message"].(string), "today") || r.header.Get("Retry-After") == "" {
		t.Fatalf("daily cap answer = %s", r.body)
	}
	if tn.outbox.count() != 3 {
		t.Fatalf("%d codes sent, want 3", tn.outbox.count())
	}
	tn.clock.Add(24 * time.Hour)
	expect(t, send(), http.StatusAccepted)
}

// spec.verification.limits.perTenantHourly: 30 parallel requests to 30
// targets from 30 addresses, budget 5: exactly 5 codes leave.
func TestPerTenantHourlyBudget(t *testing.T) {
	tn := newTenant(t)
	tn.spec.API.Plus.TrustedProxies = []string{"127.0.0.0/8"}
	tn.spec.Verification.Limits = v1alpha1.CodeLimits{PerTenantHourly: 5}
	rp := tn.replica()
	send := func(i int) resp {
		return rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "1380000" + pad4(i)},
			fmt.Sprintf("X-Forwarded-For: 198.51.100.%d", i+1))
	}
	const n = 30
	rs := burst(n, send)
	got := statuses(rs)
	t.Logf("%d parallel code requests, tenant budget 5 an hour: %d sent (202), %d refused (429)", n, got[202], got[429])
	if got[202] != 5 || got[429] != 25 || tn.outbox.count() != 5 {
		t.Fatalf("statuses %v, %d sent: want exactly 5 sent, 25 × 429", got, tn.outbox.count())
	}
	for _, r := range rs {
		if r.status == http.StatusTooManyRequests && !strings.Contains(r.obj(t)["message"].(string), "this hour") {
			t.Fatalf("budget answer = %s", r.body)
		}
	}
	tn.clock.Add(time.Hour)
	expect(t, send(99), http.StatusAccepted)
}

// A token refreshed every 50 minutes dies at login + refreshTTL: the
// window is fixed at login, and so is the revocation records' lifetime.
// (Before: each refresh restarted the window; the chain never died.)
func TestRefreshWindowIsFixedAtLogin(t *testing.T) {
	tn := newTenant(t)
	tn.spec.API.Plus.TokenTTL = &metav1.Duration{Duration: time.Hour}
	tn.spec.API.Plus.RefreshTTL = &metav1.Duration{Duration: 24 * time.Hour}
	rp := tn.replica()
	tn.quickUser(rp, "refresher")
	login := tn.clock.Now()
	r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "refresher", "password": "secret-refresher"}), http.StatusOK)
	token := r.obj(t)["access_token"].(string)
	refreshes, wrongTTL := 0, false
	for {
		tn.clock.Add(50 * time.Minute)
		r := rp.call("POST", "/api/v2/auth/refresh", token, nil)
		if r.status != http.StatusOK {
			expect(t, r, http.StatusUnauthorized)
			break
		}
		refreshes++
		if refreshes > 40 {
			t.Fatalf("still refreshing %v after login", tn.clock.Now().Sub(login))
		}
		m := r.obj(t)
		token = m["access_token"].(string)
		left := login.Add(24 * time.Hour).Sub(tn.clock.Now())
		if got := m["refresh_ttl"].(float64); got != float64(int64(left/time.Minute)) && !wrongTTL {
			wrongTTL = true
			t.Errorf("refresh %d: refresh_ttl %v, want the %v left of the login's window", refreshes, got, left)
		}
	}
	died := tn.clock.Now().Sub(login)
	t.Logf("refreshed every 50 min: %d refreshes, the chain died %v after login (refreshTTL 24h)", refreshes, died)
	if died > 24*time.Hour+50*time.Minute || died < 24*time.Hour {
		t.Fatalf("the chain died %v after login", died)
	}
	// The last token does not outlive the window either.
	expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusUnauthorized)
	// Revocation records live exactly as long as the window.
	cur, err := mongofixture.Client(t).Database(tn.db).Collection(store.ColRevocations).Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var revs []struct {
		ExpiresAt time.Time `bson:"expires_at"`
	}
	if err := cur.All(context.Background(), &revs); err != nil || len(revs) != refreshes {
		t.Fatalf("%d revocations (%v), want %d", len(revs), err, refreshes)
	}
	for _, rv := range revs {
		if !rv.ExpiresAt.Equal(login.Add(24 * time.Hour)) {
			t.Fatalf("revocation expires %v, want login + refreshTTL = %v", rv.ExpiresAt, login.Add(24*time.Hour))
		}
	}
}

// A deleted user's id is not handed to a new user even when the id
// sequence falls back (FerretDB's lost updates do that): the id is
// tombstoned, so the old token can never become the new user's. (Were it
// handed out all the same, a token issued before its user existed is
// refused too: checkLive.) On main the new user got the deleted id.
func TestDeletedUsersIDIsNotReusedBySignups(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	ctx := context.Background()
	oldID, oldToken := tn.quickUser(rp, "first_owner")
	expect(t, rp.call("GET", "/api/v2/user", oldToken, nil), http.StatusOK)
	if err := rp.store.DeleteUser(ctx, oldID); err != nil {
		t.Fatal(err)
	}
	tn.clock.Add(time.Second)
	// Rewind the id sequence, as FerretDB's lost updates do.
	_, err := mongofixture.Client(t).Database(tn.db).Collection(store.ColCounters).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: store.ColProfiles}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: oldID - 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	// Another replica, which has not tried that id itself.
	newID, newToken := tn.quickUser(tn.replica(), "second_owner")
	if newID == oldID {
		t.Fatalf("the new user got the deleted user's id %d", oldID)
	}
	r := expect(t, rp.call("GET", "/api/v2/user", oldToken, nil), http.StatusUnauthorized)
	if !strings.Contains(r.obj(t)["message"].(string), "no longer exists") {
		t.Fatalf("old token answer = %s", r.body)
	}
	expect(t, rp.call("POST", "/api/v2/auth/refresh", oldToken, nil), http.StatusUnauthorized)
	if me := expect(t, rp.call("GET", "/api/v2/user", newToken, nil), http.StatusOK).obj(t); me["name"] != "second_owner" {
		t.Fatalf("new token is %v", me["name"])
	}
}
