package plus_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

func TestRegisterAndLogin(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()

	r := expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "18364758373"}), http.StatusAccepted)
	code := tn.outbox.code(t, "18364758373")
	noSecrets(t, r.body, code)
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		t.Fatalf("code %q is not 6 digits", code)
	}
	r = expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": "创始人", "phone": "18364758373", "password": "secret1", "verifiable_type": "sms", "verifiable_code": code,
	}), http.StatusCreated)
	reg := r.obj(t)
	token, _ := reg["token"].(string)
	if token == "" || reg["ttl"] != float64(60) || reg["refresh_ttl"] != float64(20160) {
		t.Fatalf("register answer = %s", r.body)
	}

	me := expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK)
	noSecrets(t, me.body, code)
	m := me.obj(t)
	if m["name"] != "创始人" || m["phone"] != "18364758373" || m["email"] != nil || m["sex"] != float64(0) {
		t.Fatalf("GET /user = %s", me.body)
	}
	for _, k := range []string{"id", "bio", "location", "created_at", "updated_at", "avatar", "bg", "verified", "extra", "wallet", "new_wallet", "currency"} {
		if _, ok := m[k]; !ok {
			t.Errorf("GET /user lacks %q: %s", k, me.body)
		}
	}
	if ts, _ := m["created_at"].(string); ts != "2026-03-01 08:00:00" {
		t.Errorf("created_at = %q, want 2026-03-01 08:00:00", ts)
	}
	extra := m["extra"].(map[string]any)
	if extra["user_id"] != m["id"] || extra["followers_count"] != float64(0) || extra["updated_at"] != "2026-03-01 08:00:00" {
		t.Errorf("extra = %v", extra)
	}
	nw := m["new_wallet"].(map[string]any)
	if nw["balance"] != float64(0) || nw["owner_id"] != m["id"] || m["currency"].(map[string]any)["sum"] != float64(0) {
		t.Errorf("wallets = %s", me.body)
	}

	// Login by name, by phone; wrong password; unknown user.
	for _, login := range []string{"创始人", "18364758373"} {
		r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": login, "password": "secret1"}), http.StatusOK)
		lm := r.obj(t)
		if lm["token_type"] != "Bearer" || lm["expires_in"] != float64(60) || lm["refresh_ttl"] != float64(20160) || lm["access_token"] == "" {
			t.Fatalf("login answer = %s", r.body)
		}
		expect(t, rp.call("GET", "/api/v2/user", lm["access_token"].(string), nil), http.StatusOK)
	}
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "创始人", "password": "wrong!!"}), "password")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "nobody", "password": "secret1"}), "password")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "创始人"}), "password")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"password": "x"}), "login")

	// The code was single use.
	expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": "other_name", "phone": "18364758373", "password": "secret1", "verifiable_code": code,
	}), http.StatusUnprocessableEntity)

	// Form bodies work too (ThinkSNS clients send them).
	req, _ := http.NewRequest("POST", rp.srv.URL+"/api/v2/auth/login", strings.NewReader("login=18364758373&password=secret1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("form login: %d", res.StatusCode)
	}
}

func TestRegisterWithEmailAndLoginByCode(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "Ann@Example.com"}), http.StatusAccepted)
	code := tn.outbox.code(t, "ann@example.com")
	expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": "anna", "email": "ANN@example.com", "password": "secret1", "verifiable_type": "mail", "verifiable_code": code,
	}), http.StatusCreated)

	// Login with a code sent to the existing address (a minute later).
	tn.clock.Add(time.Minute)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"email": "ann@example.com"}), http.StatusAccepted)
	code = tn.outbox.code(t, "ann@example.com")
	r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "ann@example.com", "verifiable_code": code}), http.StatusOK)
	tok := r.obj(t)["access_token"].(string)
	m := expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t)
	if m["email"] != "ann@example.com" || m["phone"] != nil {
		t.Fatalf("me = %v", m)
	}
	// The same code does not log in twice; a code cannot log in by name.
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "ann@example.com", "verifiable_code": code}), "verifiable_code")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "anna", "verifiable_code": "123456"}), "verifiable_code")
}

func TestRegisterValidation(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.register(rp, "taken", "13800000001", "secret1")
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000002"}), http.StatusAccepted)
	code := tn.outbox.code(t, "13800000002")

	good := func() map[string]any {
		return map[string]any{"name": "fresh", "phone": "13800000002", "password": "secret1", "verifiable_type": "sms", "verifiable_code": code}
	}
	cases := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"no name", func(b map[string]any) { delete(b, "name") }, "name"},
		{"short name", func(b map[string]any) { b["name"] = "abc" }, "name"},
		{"long name", func(b map[string]any) { b["name"] = "abcdefghijklmnopqrstuvwxy" }, "name"},
		{"long cjk name", func(b map[string]any) { b["name"] = "一二三四五六七八九十一二三" }, "name"},
		{"digit first", func(b map[string]any) { b["name"] = "1abcd" }, "name"},
		{"space in name", func(b map[string]any) { b["name"] = "ab cd" }, "name"},
		{"name taken", func(b map[string]any) { b["name"] = "taken" }, "name"},
		{"name not a string", func(b map[string]any) { b["name"] = true }, "name"},
		{"short password", func(b map[string]any) { b["password"] = "12345" }, "password"},
		{"long password", func(b map[string]any) { b["password"] = strings.Repeat("x", 73) }, "password"},
		{"no contact", func(b map[string]any) { delete(b, "phone"); delete(b, "verifiable_type") }, "phone"},
		{"bad phone", func(b map[string]any) { b["phone"] = "12ab" }, "phone"},
		{"type mail, no email", func(b map[string]any) { b["verifiable_type"] = "mail" }, "email"},
		{"bad type", func(b map[string]any) { b["verifiable_type"] = "fax" }, "verifiable_type"},
		{"phone taken", func(b map[string]any) { b["phone"] = "13800000001" }, "phone"},
		{"no code", func(b map[string]any) { delete(b, "verifiable_code") }, "verifiable_code"},
		{"code not digits", func(b map[string]any) { b["verifiable_code"] = "12ab56" }, "verifiable_code"},
		{"wrong code", func(b map[string]any) { b["verifiable_code"] = "000000" + code[:0] }, "verifiable_code"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := good()
			c.edit(b)
			if c.name == "wrong code" && code == "000000" {
				b["verifiable_code"] = "000001"
			}
			expectInvalid(t, rp.call("POST", "/api/v2/users", "", b), c.field)
		})
	}
	// Malformed bodies are 400 with a message.
	for _, body := range []string{"{", "[1,2]", `"x"`, `{"a":1} {"b":2}`} {
		r := expect(t, rp.call("POST", "/api/v2/users", "", body), http.StatusBadRequest)
		if r.obj(t)["message"] == "" {
			t.Errorf("400 without message for %q", body)
		}
	}
	r := rp.call("POST", "/api/v2/users", "", strings.Repeat("x", 2<<20))
	expect(t, r, http.StatusBadRequest)
	// The code survived the failures above (one wrong try) and still works.
	b := good()
	b["verifiable_code"] = code
	expect(t, rp.call("POST", "/api/v2/users", "", b), http.StatusCreated)
}

func TestVerificationCodeRules(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.register(rp, "owner", "13900000000", "secret1")

	// register: only unused targets; verifycodes: only existing ones.
	expectInvalid(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13900000000"}), "phone")
	expectInvalid(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13911111111"}), "phone")
	expectInvalid(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "1", "email": "a@b.c"}), "phone")
	expectInvalid(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"email": "not-an-email"}), "email")
	expectInvalid(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{}), "phone")

	// Resend at most once a minute per target.
	tn.clock.Add(2 * time.Minute)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000000"}), http.StatusAccepted)
	first := tn.outbox.code(t, "13900000000")
	tn.clock.Add(20 * time.Second)
	r := expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000000"}), http.StatusForbidden)
	if msg := r.obj(t)["message"].(string); !strings.Contains(msg, "40 seconds") || r.header.Get("Retry-After") != "40" {
		t.Fatalf("resend refusal = %s (Retry-After %q)", r.body, r.header.Get("Retry-After"))
	}
	tn.clock.Add(40 * time.Second)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000000"}), http.StatusAccepted)
	second := tn.outbox.code(t, "13900000000")

	retrieve := func(code string) resp {
		return rp.call("PUT", "/api/v2/user/retrieve-password", "", map[string]any{
			"verifiable_type": "sms", "phone": "13900000000", "verifiable_code": code, "password": "newpass1"})
	}
	// Only the latest code counts (the earlier try counts as a wrong one).
	tries := 0
	if first != second {
		expectInvalid(t, retrieve(first), "verifiable_code")
		tries++
	}
	// Five wrong tries kill the code, even the right one afterwards: a 429
	// telling the user to ask for a new one.
	wrong := "000000"
	if second == wrong {
		wrong = "000001"
	}
	for ; tries < 5; tries++ {
		expectInvalid(t, retrieve(wrong), "verifiable_code")
	}
	r = expect(t, retrieve(second), http.StatusTooManyRequests)
	if !strings.Contains(r.obj(t)["message"].(string), "request a new one") {
		t.Fatalf("dead code answer = %s", r.body)
	}

	// A fresh code expires after the TTL (5 minutes).
	tn.clock.Add(61 * time.Second)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000000"}), http.StatusAccepted)
	third := tn.outbox.code(t, "13900000000")
	tn.clock.Add(5*time.Minute + time.Second)
	expectInvalid(t, retrieve(third), "verifiable_code")

	// Codes are stored only as HMACs.
	cur, err := mongofixture.Client(t).Database(tn.db).Collection("codes").Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(context.Background(), &docs); err != nil || len(docs) == 0 {
		t.Fatalf("codes: %v %d", err, len(docs))
	}
	for _, d := range docs {
		for _, c := range []string{first, second, third} {
			for k, v := range d {
				s, ok := v.(string)
				if !ok || k == "_id" {
					continue
				}
				// The HMAC is hex: the code's six digits can appear in it by
				// chance (a failure seen once), so it must only differ.
				if k == "hash" && s != c || k != "hash" && !strings.Contains(s, c) {
					continue
				}
				t.Fatalf("code %s stored in clear in %s: %v", c, k, d)
			}
		}
	}
}

func TestCodeSendingRateLimitPerIP(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	for i := 0; i < 30; i++ {
		expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "1370000" + pad4(i)}), http.StatusAccepted)
	}
	r := expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13799999999"}), http.StatusTooManyRequests)
	if !strings.Contains(r.obj(t)["message"].(string), "retry in") || r.header.Get("Retry-After") == "" {
		t.Fatalf("429 = %s", r.body)
	}
	tn.clock.Add(time.Hour)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13799999999"}), http.StatusAccepted)
}

// TestCodeSendingRateLimitPerForwardedIP: behind a trusted proxy each
// client has its own budget; without trust, X-Forwarded-For changes nothing.
func TestCodeSendingRateLimitPerForwardedIP(t *testing.T) {
	send := func(rp *replica, i int, client string) resp {
		return rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "1370000" + pad4(i)},
			"X-Forwarded-For: 1.2.3.4, "+client) // the left-most address is the client's own claim
	}
	behindIngress := newTenant(t)
	behindIngress.spec.API.Plus.TrustedProxies = []string{"127.0.0.0/8"} // httptest's peer
	rp := behindIngress.replica()
	for i := 0; i < 30; i++ {
		expect(t, send(rp, i, "198.51.100.1"), http.StatusAccepted)
	}
	expect(t, send(rp, 30, "198.51.100.1"), http.StatusTooManyRequests)
	expect(t, send(rp, 31, "198.51.100.2"), http.StatusAccepted)

	direct := newTenant(t)
	rp = direct.replica()
	for i := 0; i < 30; i++ {
		expect(t, send(rp, i, "198.51.100."+itoa(i+1)), http.StatusAccepted)
	}
	expect(t, send(rp, 30, "198.51.100.99"), http.StatusTooManyRequests)
}

func pad4(i int) string {
	s := "0000" + itoa(i)
	return s[len(s)-4:]
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestLoginFailureLimits(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.quickUser(rp, "victim")
	tn.quickUser(rp, "bystander")
	for i := 0; i < 5; i++ {
		expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "victim", "password": "guess" + itoa(i) + "xx"}), "password")
	}
	// Locked: even the right password waits.
	r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "victim", "password": "secret-victim"}), http.StatusTooManyRequests)
	if !strings.Contains(r.obj(t)["message"].(string), "this account") {
		t.Fatalf("429 = %s", r.body)
	}
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "bystander", "password": "secret-bystander"}), http.StatusOK)
	tn.clock.Add(15 * time.Minute)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "victim", "password": "secret-victim"}), http.StatusOK)

	// Per address: 50 failures over many accounts lock the address.
	tn.clock.Add(15 * time.Minute)
	for i := 0; i < 50; i++ {
		expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "ghost" + itoa(i), "password": "whatever"}), "password")
	}
	r = expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "bystander", "password": "secret-bystander"}), http.StatusTooManyRequests)
	if !strings.Contains(r.obj(t)["message"].(string), "address") {
		t.Fatalf("429 = %s", r.body)
	}
}

// Sixteen people registering at once all get in, each with an id of their
// own: NextID may repeat on FerretDB, and a repeated id must not surface as
// "name is already taken".
func TestConcurrentRegistrationsGetDistinctIDs(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	const n = 16
	phones := make([]string, n)
	codes := make([]string, n)
	for i := range phones {
		phones[i] = "1390000" + pad4(i)
		expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": phones[i]}), http.StatusAccepted)
		codes[i] = tn.outbox.code(t, phones[i])
	}
	// Rewind the id sequence as FerretDB's lost updates do: the next ids
	// handed out are taken, whichever registration draws them.
	earlier, _ := tn.quickUser(rp, "early_bird")
	_, err := mongofixture.Client(t).Database(tn.db).Collection(store.ColCounters).UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: store.ColProfiles}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: int64(0)}}}})
	if err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range phones {
		wg.Go(func() {
			r := rp.call("POST", "/api/v2/users", "", map[string]any{
				"name": "racer_" + itoa(i), "phone": phones[i], "password": "secret1",
				"verifiable_type": "sms", "verifiable_code": codes[i],
			})
			if r.status != http.StatusCreated {
				t.Errorf("registration %d: %d %s", i, r.status, r.body)
				return
			}
			tokens[i], _ = r.obj(t)["token"].(string)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[float64]string{float64(earlier): "early_bird"}
	for i, token := range tokens {
		me := expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK).obj(t)
		id, _ := me["id"].(float64)
		if other, ok := seen[id]; ok || me["phone"] != phones[i] {
			t.Errorf("user %d (%v) got id %v, also held by %s", i, me["phone"], id, other)
		}
		seen[id] = phones[i]
	}
	if got := len(expect(t, rp.call("GET", "/api/v2/users?limit=50", "", nil), http.StatusOK).list(t)); got != n+1 {
		t.Errorf("GET /users lists %d users, want %d", got, n+1)
	}
}
