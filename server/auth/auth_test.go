package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keyA = []byte("tenant-a-key-0123456789abcdef012")
	keyB = []byte("tenant-b-key-0123456789abcdef012")
)

func newIssuer(t *testing.T, key []byte, iss string, now *time.Time) *Issuer {
	t.Helper()
	is, err := NewIssuer(key, iss, time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	is.SetClock(func() time.Time { return *now })
	return is
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	is := newIssuer(t, keyA, "default/acme", &now)
	tok, c, err := is.Issue(42, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err := is.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.UserID != 42 || got.Epoch != 7 || got.ID != c.ID || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("claims = %+v, want user 42 epoch 7 id %s", got, c.ID)
	}
	_, c2, _ := is.Issue(42, 7)
	if c2.ID == c.ID {
		t.Fatal("two tokens share a jti")
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := newIssuer(t, keyA, "default/acme", &now)
	otherKey := newIssuer(t, keyB, "default/acme", &now)
	otherTenant := newIssuer(t, keyA, "default/other", &now)
	good, _, _ := a.Issue(1, 0)

	fromOtherKey, _, _ := otherKey.Issue(1, 0)
	fromOtherTenant, _, _ := otherTenant.Issue(1, 0)

	claims := jwt.MapClaims{"iss": "default/acme", "sub": "1", "jti": "x",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString(keyA)
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, claims).SignedString(keyA)
	noSub := jwt.MapClaims{"iss": "default/acme", "jti": "x", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	noSubTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, noSub).SignedString(keyA)
	badSub := jwt.MapClaims{"iss": "default/acme", "sub": "-3", "jti": "x", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	badSubTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, badSub).SignedString(keyA)
	noExp := jwt.MapClaims{"iss": "default/acme", "sub": "1", "jti": "x", "iat": now.Unix()}
	noExpTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, noExp).SignedString(keyA)

	// A token whose header says "none" but carries our valid signature.
	parts := strings.Split(good, ".")
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	algNoneSigned := base64.RawURLEncoding.EncodeToString(hdr) + "." + parts[1] + "." + parts[2]
	// Payload tampered, signature kept.
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"default/acme","sub":"2","jti":"x","iat":1,"exp":9999999999}`))
	tampered := parts[0] + "." + tamperedPayload + "." + parts[2]
	// Re-signed with the key by hand but alg HS256 header and a different user: valid (control).
	mac := hmac.New(sha256.New, keyA)
	mac.Write([]byte(parts[0] + "." + tamperedPayload))
	control := parts[0] + "." + tamperedPayload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if c, err := a.Verify(control); err != nil || c.UserID != 2 {
		t.Fatalf("hand-signed control token: %v %+v", err, c)
	}

	cases := map[string]string{
		"empty":            "",
		"garbage":          "not.a.token",
		"alg none":         none,
		"alg none header":  algNoneSigned,
		"HS512":            hs512,
		"HS384":            hs384,
		"other key":        fromOtherKey,
		"other tenant iss": fromOtherTenant,
		"tampered payload": tampered,
		"no subject":       noSubTok,
		"negative subject": badSubTok,
		"no exp":           noExpTok,
		"huge":             strings.Repeat("a", 5000),
	}
	for name, tok := range cases {
		if _, err := a.Verify(tok); err == nil {
			t.Errorf("%s: Verify accepted the token", name)
		}
		if _, err := a.VerifyForRefresh(tok); err == nil {
			t.Errorf("%s: VerifyForRefresh accepted the token", name)
		}
	}
}

func TestExpiryAndRefreshWindow(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	is := newIssuer(t, keyA, "default/acme", &now)
	tok, _, _ := is.Issue(5, 0)

	now = now.Add(time.Hour)
	if _, err := is.Verify(tok); err != ErrExpiredToken {
		t.Fatalf("at exp: err = %v, want expired", err)
	}
	if _, err := is.VerifyForRefresh(tok); err != nil {
		t.Fatalf("expired but refreshable: %v", err)
	}
	now = now.Add(23 * time.Hour)
	if _, err := is.VerifyForRefresh(tok); err != ErrExpiredToken {
		t.Fatalf("past refresh deadline: err = %v", err)
	}
}

func TestNewIssuerRejectsWeakConfig(t *testing.T) {
	if _, err := NewIssuer([]byte("short"), "a/b", time.Hour, time.Hour); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewIssuer(keyA[:31], "a/b", time.Hour, time.Hour); err == nil {
		t.Error("31-byte key accepted")
	}
	if _, err := NewIssuer(keyA[:32], "a/b", time.Hour, time.Hour); err != nil {
		t.Errorf("32-byte key refused: %v", err)
	}
	if _, err := NewIssuer(keyA, "", time.Hour, time.Hour); err == nil {
		t.Error("empty issuer accepted")
	}
	if _, err := NewIssuer(keyA, "a/b", 0, time.Hour); err == nil {
		t.Error("zero TTL accepted")
	}
}

func TestPasswordHashing(t *testing.T) {
	h := NewHasher(4)
	hash, err := h.Hash("secret1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(hash, "secret1") || !strings.HasPrefix(hash, "$2a$04$") {
		t.Fatalf("hash %q is not a bcrypt hash at cost 4", hash)
	}
	if !check(h, hash, "secret1") {
		t.Error("right password refused")
	}
	if check(h, hash, "secret2") {
		t.Error("wrong password accepted")
	}
	if check(h, "", "") || check(h, "", "secret1") {
		t.Error("empty hash matched")
	}
	other, _ := h.Hash("secret1")
	if other == hash {
		t.Error("hashes are not salted")
	}
	if _, err := h.Hash(strings.Repeat("x", 73)); err != ErrPasswordTooLong {
		t.Errorf("73-byte password: err = %v", err)
	}
	if check(h, hash, strings.Repeat("x", 73)) {
		t.Error("overlong password matched")
	}
}

// A refreshed token keeps its login time: a chain of refreshes, each well
// within the window, ends at login + refreshTTL, and the last token's
// expiry does not reach past it.
func TestRefreshChainEndsAtLoginPlusRefreshTTL(t *testing.T) {
	login := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := login
	is := newIssuer(t, keyA, "default/acme", &now) // TTL 1h, refresh 24h
	tok, c, _ := is.Issue(5, 0)
	if !c.AuthTime.Equal(login) {
		t.Fatalf("auth_time %v, want the login %v", c.AuthTime, login)
	}
	for i := 0; ; i++ {
		now = now.Add(50 * time.Minute)
		prev, err := is.VerifyForRefresh(tok)
		if err != nil {
			if now.Before(login.Add(24 * time.Hour)) {
				t.Fatalf("refresh %d at %v refused within the window: %v", i, now, err)
			}
			break
		}
		if i > 40 {
			t.Fatalf("still refreshing at %v, %d refreshes after the login", now, i)
		}
		tok, c, err = is.IssueRefreshed(prev, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !c.AuthTime.Equal(login) || c.ExpiresAt.After(login.Add(24*time.Hour)) {
			t.Fatalf("refresh %d: auth_time %v, exp %v; want %v and at most %v", i, c.AuthTime, c.ExpiresAt, login, login.Add(24*time.Hour))
		}
		if got, err := is.Verify(tok); err != nil || !got.AuthTime.Equal(login) {
			t.Fatalf("refreshed token: %+v %v", got, err)
		}
	}
	if !now.After(login.Add(24 * time.Hour)) {
		t.Fatalf("the chain ended at %v, before the window", now)
	}
}

// Tokens of earlier versions have no auth_time: their iat is the login.
// A token claiming a login after its own issue is refused.
func TestAuthTimeClaim(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	is := newIssuer(t, keyA, "default/acme", &now)
	sign := func(extra jwt.MapClaims) string {
		c := jwt.MapClaims{"iss": "default/acme", "sub": "1", "jti": "x", "epoch": 0,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(keyA)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old, err := is.Verify(sign(nil))
	if err != nil || !old.AuthTime.Equal(now) {
		t.Fatalf("token without auth_time: %+v %v", old, err)
	}
	if _, err := is.Verify(sign(jwt.MapClaims{"auth_time": now.Add(time.Second).Unix()})); err == nil {
		t.Error("auth_time after iat accepted")
	}
	earlier, err := is.Verify(sign(jwt.MapClaims{"auth_time": now.Add(-time.Hour).Unix()}))
	if err != nil || !earlier.RefreshDeadline(24*time.Hour).Equal(now.Add(23*time.Hour)) {
		t.Fatalf("refresh deadline of a token logged in an hour before: %+v %v", earlier, err)
	}
}

// A login starts a family; refreshes keep it; a token from before families
// (no fam claim) stands for a family of its own, its jti, which its
// successors inherit.
func TestFamilies(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	is := newIssuer(t, keyA, "default/acme", &now)
	_, a, _ := is.Issue(42, 0)
	_, b, _ := is.Issue(42, 0)
	if a.Family == "" || a.Family == b.Family || a.Family == a.ID {
		t.Fatalf("two logins: families %q and %q (jti %q)", a.Family, b.Family, a.ID)
	}
	tok, next, err := is.IssueRefreshed(a, 0)
	if err != nil || next.Family != a.Family || next.ID == a.ID {
		t.Fatalf("refreshed: %+v %v", next, err)
	}
	if got, err := is.Verify(tok); err != nil || got.Family != a.Family {
		t.Fatalf("verified refreshed: %+v %v", got, err)
	}
	legacy, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "default/acme", "sub": "42", "jti": "old-jti",
		"epoch": 0, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).SignedString(keyA)
	old, err := is.Verify(legacy)
	if err != nil || old.Family != "old-jti" {
		t.Fatalf("legacy token: %+v %v", old, err)
	}
	if _, succ, err := is.IssueRefreshed(old, 0); err != nil || succ.Family != "old-jti" {
		t.Fatalf("legacy successor: %+v %v", succ, err)
	}
}
