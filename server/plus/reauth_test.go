package plus_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/server/wechat/wechattest"
)

// pastTheWindow moves the clock past the default re-authentication window.
func pastTheWindow(tn *tenant) { tn.clock.Add(11 * time.Minute) }

// With only a stolen token, PUT /user cannot move the account's e-mail to
// an attacker once the login is older than the window: 403, nothing
// changes and the new address's code is not spent. The password, or a
// code sent to the phone the account has, proves the owner; the old
// contact is told. On main the change went through on the token alone.
func TestContactChangeNeedsProofAfterTheWindow(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	_, tok := tn.register(rp, "owner", "13900000001", "secret1")
	pastTheWindow(tn)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "thief@example.com"}), http.StatusAccepted)
	code := tn.outbox.code(t, "thief@example.com")
	r := expect(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "thief@example.com", "verifiable_code": code}), http.StatusForbidden)
	if !strings.Contains(string(r.body), "proof that it is you") {
		t.Fatalf("403 = %s", r.body)
	}
	expectInvalid(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "thief@example.com", "verifiable_code": code, "password": "wrong12"}), "password")
	if me := expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t); me["email"] != nil {
		t.Fatalf("e-mail changed without proof: %v", me["email"])
	}
	// The owner, with the password: the same code still works.
	expect(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "thief@example.com", "verifiable_code": code, "password": "secret1"}), http.StatusNoContent)
	if n := tn.outbox.notices("13900000001"); !slices.Equal(n, []string{verify.NoticeEmailChanged}) {
		t.Fatalf("notices to the phone: %v", n)
	}
	// A code sent to the current contact (the phone) is proof too.
	tn.clock.Add(time.Minute)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13900000002"}), http.StatusAccepted)
	newCode := tn.outbox.code(t, "13900000002")
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000001"}), http.StatusAccepted)
	current := tn.outbox.code(t, "13900000001")
	expectInvalid(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"phone": "13900000002", "verifiable_code": newCode, "current_verifiable_code": "000000"}), "current_verifiable_code")
	expect(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"phone": "13900000002", "verifiable_code": newCode, "current_verifiable_code": current}), http.StatusNoContent)
	// Both contacts the account had hear of the phone change.
	if n := tn.outbox.notices("13900000001"); !slices.Equal(n, []string{verify.NoticeEmailChanged, verify.NoticePhoneChanged}) {
		t.Fatalf("notices to the old phone: %v", n)
	}
	if n := tn.outbox.notices("thief@example.com"); !slices.Equal(n, []string{verify.NoticePhoneChanged}) {
		t.Fatalf("notices to the e-mail: %v", n)
	}
	// A refresh keeps the login time: it does not reopen the window.
	fresh := expect(t, rp.call("POST", "/api/v2/auth/refresh", tok, nil), http.StatusOK).obj(t)["access_token"].(string)
	expect(t, rp.call("PUT", "/api/v2/user", fresh, map[string]any{"email": "other@example.com", "verifiable_code": "123456"}), http.StatusForbidden)
}

// Within the window the seed's request shape needs nothing more; the
// window is the tenant's: two minutes after a login, the default 10m still
// admits the change, a 1m window asks for proof.
func TestReauthWindowIsTheTenants(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	_, tok := tn.register(rp, "seeduser", "13900000011", "secret1")
	tn.clock.Add(2 * time.Minute)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "seed@example.com"}), http.StatusAccepted)
	expect(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "seed@example.com", "verifiable_code": tn.outbox.code(t, "seed@example.com")}), http.StatusNoContent)

	strict := newTenant(t)
	strict.spec.API.Plus.ReauthWindow = &metav1.Duration{Duration: time.Minute}
	sp := strict.replica()
	_, tok = strict.register(sp, "strictuser", "13900000012", "secret1")
	strict.clock.Add(2 * time.Minute)
	expect(t, sp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "strict@example.com"}), http.StatusAccepted)
	code := strict.outbox.code(t, "strict@example.com")
	expect(t, sp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "strict@example.com", "verifiable_code": code}), http.StatusForbidden)
	expect(t, sp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "strict@example.com", "verifiable_code": code, "password": "secret1"}), http.StatusNoContent)
}

// Re-authentication by password spends the account's login budget: 30
// wrong passwords at once get exactly 5 judged and 25 × 429, after which
// the right password (here and at login) waits too. On main PUT /user
// refused the password field (422 unknown field) and judged nothing.
func TestReauthPasswordSharesTheLoginBudget(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	_, tok := tn.register(rp, "guessed", "13900000021", "secret1")
	pastTheWindow(tn)
	const n = 30
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "x@example.com", "verifiable_code": "123456", "password": "wrong-" + itoa(i)}).status
		}()
	}
	wg.Wait()
	judged, limited := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusUnprocessableEntity:
			judged++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("status %d", s)
		}
	}
	if judged != 5 || limited != n-5 {
		t.Fatalf("%d judged, %d limited", judged, limited)
	}
	expect(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "x@example.com", "verifiable_code": "123456", "password": "secret1"}), http.StatusTooManyRequests)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "guessed", "password": "secret1"}), http.StatusTooManyRequests)
}

// A first password (an account that signs in by code) needs proof past the
// window, a code sent to the account's phone; the phone is told. On main
// the token alone set it.
func TestFirstPasswordNeedsProof(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	if err := rp.store.CreateProfile(context.Background(), &store.Profile{Username: "codeonly", Phone: "13900000031", PhoneVerified: true}); err != nil {
		t.Fatal(err)
	}
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000031"}), http.StatusAccepted)
	tok := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "13900000031", "verifiable_code": tn.outbox.code(t, "13900000031")}), http.StatusOK).obj(t)["access_token"].(string)
	pastTheWindow(tn)
	set := map[string]any{"password": "brandnew1", "password_confirmation": "brandnew1"}
	expect(t, rp.call("PUT", "/api/v2/user/password", tok, set), http.StatusForbidden)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000031"}), http.StatusAccepted)
	set["verifiable_code"] = tn.outbox.code(t, "13900000031")
	expect(t, rp.call("PUT", "/api/v2/user/password", tok, set), http.StatusNoContent)
	if n := tn.outbox.notices("13900000031"); !slices.Equal(n, []string{verify.NoticePasswordSet}) {
		t.Fatalf("notices: %v", n)
	}
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "codeonly", "password": "brandnew1"}), http.StatusOK)
}

// Linking WeChat and binding WeChat's phone add ways into the account:
// past the window they need proof, and WeChat is not even called without
// it. On main the token alone linked an attacker's WeChat.
func TestWeChatLinkAndPhoneNeedProof(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, tok := tn.register(rp, "wxowner", "13900000041", "secret1")
	pastTheWindow(tn)
	calls := fake.Calls(wechattest.OpSession)
	expect(t, rp.call("PUT", "/api/v2/user/wechat", tok, map[string]any{"code": fake.Login("o-thief", "")}), http.StatusForbidden)
	if fake.Calls(wechattest.OpSession) != calls {
		t.Fatal("WeChat was called for an unproven link")
	}
	expect(t, rp.call("PUT", "/api/v2/user/wechat", tok, map[string]any{"code": fake.Login("o-owner", ""), "password": "secret1"}), http.StatusNoContent)
	expect(t, rp.call("POST", "/api/v2/user/wechat/phone", tok, map[string]any{"code": fake.PhoneCode("13900000042")}), http.StatusForbidden)
	expect(t, rp.call("POST", "/api/v2/user/wechat/phone", tok, map[string]any{"code": fake.PhoneCode("13900000042"), "password": "secret1"}), http.StatusOK)
	if n := tn.outbox.notices("13900000041"); !slices.Equal(n, []string{verify.NoticeWeChatLinked, verify.NoticePhoneChanged}) {
		t.Fatalf("notices to the old phone: %v", n)
	}
}
