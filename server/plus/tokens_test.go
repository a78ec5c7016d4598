package plus_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenRevocationRefreshAndPasswordChange(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, token := tn.register(rp, "tokenuser", "13600000000", "secret1")

	// No token, a malformed header, garbage: 401 with a message.
	for _, hdr := range []string{"", "Basic abc", "Bearer", "Bearer not.a.jwt"} {
		req, _ := http.NewRequest("GET", rp.srv.URL+"/api/v2/user", nil)
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: status %d", hdr, res.StatusCode)
		}
	}

	// Forged tokens: alg none, another key, another tenant, another alg.
	claims := jwt.MapClaims{"iss": "tenants/acme", "sub": strconv.FormatInt(id, 10), "jti": "forged", "epoch": 0,
		"iat": tn.clock.Now().Unix(), "exp": tn.clock.Now().Add(time.Hour).Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	otherKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("another-tenant-key-0123456789abcdef"))
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(jwtKey))
	otherIss := jwt.MapClaims{}
	for k, v := range claims {
		otherIss[k] = v
	}
	otherIss["iss"] = "tenants/other"
	otherTenant, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, otherIss).SignedString([]byte(jwtKey))
	control, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtKey))
	for name, tok := range map[string]string{"none": none, "other key": otherKey, "HS512": hs512, "other tenant": otherTenant} {
		expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusUnauthorized)
		_ = name
	}
	expect(t, rp.call("GET", "/api/v2/user", control, nil), http.StatusOK) // the forgery recipe is right

	// Refresh: a new token; the old one is revoked and refreshes only once
	// (a second try ends the login: TestRefreshTokenReuseEndsTheLogin).
	r := expect(t, rp.call("POST", "/api/v2/auth/refresh", token, nil), http.StatusOK)
	fresh := r.obj(t)["access_token"].(string)
	expect(t, rp.call("GET", "/api/v2/user", fresh, nil), http.StatusOK)
	expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusUnauthorized)
	expect(t, rp.call("POST", "/api/v2/auth/refresh", "", nil), http.StatusUnauthorized)

	// Expired: refused, but refreshable within the refresh TTL.
	tn.clock.Add(61 * time.Minute)
	expect(t, rp.call("GET", "/api/v2/user", fresh, nil), http.StatusUnauthorized)
	r = expect(t, rp.call("POST", "/api/v2/auth/refresh", fresh, nil), http.StatusOK)
	fresh = r.obj(t)["access_token"].(string)
	tn.clock.Add(14*24*time.Hour + time.Minute)
	expect(t, rp.call("POST", "/api/v2/auth/refresh", fresh, nil), http.StatusUnauthorized)

	// Logout: the token stops working.
	a := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "tokenuser", "password": "secret1"}), http.StatusOK).obj(t)["access_token"].(string)
	b := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "tokenuser", "password": "secret1"}), http.StatusOK).obj(t)["access_token"].(string)
	expect(t, rp.call("POST", "/api/v2/auth/logout", a, nil), http.StatusOK)
	expect(t, rp.call("GET", "/api/v2/user", a, nil), http.StatusUnauthorized)
	expect(t, rp.call("POST", "/api/v2/auth/refresh", a, nil), http.StatusUnauthorized)
	expect(t, rp.call("POST", "/api/v2/auth/logout", a, nil), http.StatusUnauthorized)
	expect(t, rp.call("GET", "/api/v2/user", b, nil), http.StatusOK) // other sessions live on

	// Password change ends every older token, including the caller's.
	expectInvalid(t, rp.call("PUT", "/api/v2/user/password", b, map[string]any{"old_password": "wrong12", "password": "secret2", "password_confirmation": "secret2"}), "old_password")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/password", b, map[string]any{"old_password": "secret1", "password": "secret2", "password_confirmation": "secret3"}), "password_confirmation")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/password", b, map[string]any{"password": "secret2", "password_confirmation": "secret2"}), "old_password")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/password", b, map[string]any{"old_password": "secret1", "password": "short", "password_confirmation": "short"}), "password")
	c := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "tokenuser", "password": "secret1"}), http.StatusOK).obj(t)["access_token"].(string)
	expect(t, rp.call("PUT", "/api/v2/user/password", b, map[string]any{"old_password": "secret1", "password": "secret2", "password_confirmation": "secret2"}), http.StatusNoContent)
	for _, tok := range []string{b, c} {
		r := expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusUnauthorized)
		if !strings.Contains(r.obj(t)["message"].(string), "password") {
			t.Errorf("401 after password change = %s", r.body)
		}
		expect(t, rp.call("POST", "/api/v2/auth/refresh", tok, nil), http.StatusUnauthorized)
	}
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "tokenuser", "password": "secret1"}), "password")
	d := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "tokenuser", "password": "secret2"}), http.StatusOK).obj(t)["access_token"].(string)

	// Retrieve-password by code also ends older tokens.
	tn.clock.Add(time.Minute)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13600000000"}), http.StatusAccepted)
	code := tn.outbox.code(t, "13600000000")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/retrieve-password", "", map[string]any{"phone": "13600000000", "verifiable_code": code, "password": "secret3"}), "verifiable_type")
	// Another number with this code: the code is wrong for it (whether or
	// not anybody has that number, issue 21).
	expectInvalid(t, rp.call("PUT", "/api/v2/user/retrieve-password", "", map[string]any{"verifiable_type": "sms", "phone": "13611111111", "verifiable_code": code, "password": "secret3"}), "verifiable_code")
	expect(t, rp.call("PUT", "/api/v2/user/retrieve-password", "", map[string]any{"verifiable_type": "sms", "phone": "13600000000", "verifiable_code": code, "password": "secret3"}), http.StatusNoContent)
	expect(t, rp.call("GET", "/api/v2/user", d, nil), http.StatusUnauthorized)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "13600000000", "password": "secret3"}), http.StatusOK)
}

func TestWrongOldPasswordIsRateLimited(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	_, tok := tn.quickUser(rp, "pwuser")
	for i := 0; i < 5; i++ {
		expectInvalid(t, rp.call("PUT", "/api/v2/user/password", tok, map[string]any{"old_password": "nope" + itoa(i) + "xx", "password": "secret2", "password_confirmation": "secret2"}), "old_password")
	}
	expect(t, rp.call("PUT", "/api/v2/user/password", tok, map[string]any{"old_password": "secret-pwuser", "password": "secret2", "password_confirmation": "secret2"}), http.StatusTooManyRequests)
}
