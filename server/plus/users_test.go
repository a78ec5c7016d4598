package plus_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

func ids(t *testing.T, l []map[string]any) []int64 {
	t.Helper()
	out := make([]int64, len(l))
	for i, u := range l {
		out[i] = int64(u["id"].(float64))
	}
	return out
}

func TestGetUsersAndUser(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	aliceID, alice := tn.register(rp, "alice", "13300000001", "secret1")
	bobID, bob := tn.register(rp, "bob_b", "13300000002", "secret1")
	carolID, _ := tn.quickUser(rp, "carol")
	expect(t, rp.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", bobID), alice, nil), http.StatusNoContent)
	expect(t, rp.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", aliceID), bob, nil), http.StatusNoContent)
	expect(t, rp.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", carolID), alice, nil), http.StatusNoContent)

	// Default: newest first, following/follower for the caller.
	l := expect(t, rp.call("GET", "/api/v2/users", alice, nil), http.StatusOK).list(t)
	if got := ids(t, l); fmt.Sprint(got) != fmt.Sprint([]int64{carolID, bobID, aliceID}) {
		t.Fatalf("ids = %v", got)
	}
	for _, u := range l {
		noSecrets(t, []byte(fmt.Sprint(u)))
		if _, ok := u["phone"]; ok {
			t.Fatalf("list shows a phone: %v", u)
		}
		switch int64(u["id"].(float64)) {
		case bobID:
			if u["following"] != true || u["follower"] != true {
				t.Errorf("bob as seen by alice: %v", u)
			}
		case carolID:
			if u["following"] != true || u["follower"] != false {
				t.Errorf("carol as seen by alice: %v", u)
			}
		}
	}
	// Anonymous: both false.
	for _, u := range expect(t, rp.call("GET", "/api/v2/users", "", nil), http.StatusOK).list(t) {
		if u["following"] != false || u["follower"] != false {
			t.Errorf("anonymous view: %v", u)
		}
	}
	get := func(q string) []int64 {
		return ids(t, expect(t, rp.call("GET", "/api/v2/users?"+q, "", nil), http.StatusOK).list(t))
	}
	for q, want := range map[string][]int64{
		"order=asc":         {aliceID, bobID, carolID},
		"order=asc&limit=2": {aliceID, bobID},
		fmt.Sprintf("order=asc&since=%d", aliceID): {bobID, carolID},
		fmt.Sprintf("since=%d", carolID):           {bobID, aliceID},
		"name=ob":                                  {bobID},
		"name=a&order=asc":                         {aliceID, carolID},
		"fetch_by=username&name=alice,carol":       {carolID, aliceID},
		"fetch_by=username&name=ali":               {},
		fmt.Sprintf("id=%d,%d", aliceID, carolID):  {carolID, aliceID},
		"limit=1":  {carolID},
		"name=zzz": {},
	} {
		if got := get(q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("GET /users?%s = %v, want %v", q, got, want)
		}
	}
	for q, field := range map[string]string{
		"limit=0": "limit", "limit=51": "limit", "limit=x": "limit", "order=up": "order",
		"since=-1": "since", "since=a": "since", "fetch_by=nick": "fetch_by", "id=1,x": "id",
		"fetch_by=username": "name", "id=%20": "id", "fetch_by=username&name=%2C": "name",
	} {
		expectInvalid(t, rp.call("GET", "/api/v2/users?"+q, "", nil), field)
	}
	// A bad token on an optional-auth route is still a 401.
	expect(t, rp.call("GET", "/api/v2/users", "garbage", nil), http.StatusUnauthorized)

	// GET /users/{user} by e-mail, phone, name and id; never another's phone.
	if _, err := rp.store.SetContact(context.Background(), bobID, store.FieldEmail, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, ident := range []string{"bob@example.com", "BOB@example.com", "13300000002", "bob_b", fmt.Sprint(bobID)} {
		r := expect(t, rp.call("GET", "/api/v2/users/"+ident, alice, nil), http.StatusOK)
		u := r.obj(t)
		if int64(u["id"].(float64)) != bobID || u["following"] != true || u["follower"] != true {
			t.Errorf("GET /users/%s = %s", ident, r.body)
		}
		if strings.Contains(string(r.body), "13300000002") || strings.Contains(string(r.body), "bob@example.com") {
			t.Errorf("GET /users/%s shows contact data: %s", ident, r.body)
		}
	}
	for _, ident := range []string{"nobody@example.com", "13399999999", "nobody", "999999", "0", "-1", "a%20b", "@"} {
		r := expect(t, rp.call("GET", "/api/v2/users/"+ident, alice, nil), http.StatusNotFound)
		if r.obj(t)["message"] == "" {
			t.Errorf("404 without message for %s", ident)
		}
	}
	// following/follower parameters: relations of another user.
	u := expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d?following=%d&follower=%d", carolID, aliceID, bobID), "", nil), http.StatusOK).obj(t)
	if u["following"] != true || u["follower"] != false {
		t.Errorf("carol with following=alice follower=bob: %v", u)
	}
	expectInvalid(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d?following=x", carolID), "", nil), "following")

	// A user made by the management API shows nickname and city as name and location.
	p := &store.Profile{Nickname: "管理员", City: "成都市", Province: "四川省", Country: "中国", Gender: 1}
	if err := rp.store.CreateProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	m := expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d", p.ID), "", nil), http.StatusOK).obj(t)
	if m["name"] != "管理员" || m["location"] != "成都市 四川省 中国" || m["sex"] != float64(1) {
		t.Errorf("management user = %v", m)
	}
}

func TestUpdateMe(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.quickUser(rp, "someone")
	id, tok := tn.quickUser(rp, "editor")
	tn.clock.Add(90 * time.Second)
	expect(t, rp.call("PATCH", "/api/v2/user", tok, map[string]any{
		"name": "新名字", "bio": "我是大管理员", "sex": 2, "location": "成都市 四川省 中国", "avatar": "public:avatar.png", "bg": "public:bg.png",
	}), http.StatusNoContent)
	m := expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t)
	if m["name"] != "新名字" || m["bio"] != "我是大管理员" || m["sex"] != float64(2) || m["location"] != "成都市 四川省 中国" ||
		m["avatar"] != "public:avatar.png" || m["bg"] != "public:bg.png" {
		t.Fatalf("after PATCH: %v", m)
	}
	// sex as a numeric string (forms), empty body: fine.
	expect(t, rp.call("PATCH", "/api/v2/user", tok, map[string]any{"sex": "1"}), http.StatusNoContent)
	expect(t, rp.call("PATCH", "/api/v2/user", tok, map[string]any{}), http.StatusNoContent)
	expect(t, rp.call("PATCH", "/api/v2/user", tok, nil), http.StatusNoContent)
	// Re-using one's own name is fine; another's is not.
	expect(t, rp.call("PATCH", "/api/v2/user", tok, map[string]any{"name": "新名字"}), http.StatusNoContent)
	for body, field := range map[string]string{
		`{"name":"someone"}`: "name", `{"name":"x"}`: "name", `{"sex":3}`: "sex", `{"sex":"male"}`: "sex",
		`{"bio":` + fmt.Sprintf("%q", strings.Repeat("b", 256)) + `}`: "bio", `{"location":[1]}`: "location", `{"avatar":{}}`: "avatar",
	} {
		expectInvalid(t, rp.call("PATCH", "/api/v2/user", tok, body), field)
	}
	p, err := rp.store.GetProfile(context.Background(), id)
	if err != nil || p.Gender != 1 || p.Username != "新名字" {
		t.Fatalf("stored profile %+v %v", p, err)
	}
	expect(t, rp.call("PATCH", "/api/v2/user", "", map[string]any{"bio": "x"}), http.StatusUnauthorized)
}

func TestContactBinding(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	_, tok := tn.register(rp, "binder", "13200000000", "secret1")
	tn.register(rp, "other", "13200000001", "secret1")

	// Bind an e-mail with a code sent to it.
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "binder@example.com"}), http.StatusAccepted)
	code := tn.outbox.code(t, "binder@example.com")
	expectInvalid(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "binder@example.com"}), "verifiable_code")
	expectInvalid(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"verifiable_code": code}), "phone")
	expectInvalid(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"phone": "13200000001", "verifiable_code": code}), "phone")
	expect(t, rp.call("PUT", "/api/v2/user", tok, map[string]any{"email": "binder@example.com", "verifiable_code": code}), http.StatusNoContent)
	m := expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t)
	if m["email"] != "binder@example.com" {
		t.Fatalf("email not bound: %v", m)
	}

	// Unbind the phone: password and a code sent to the phone.
	tn.clock.Add(61 * time.Second)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13200000000"}), http.StatusAccepted)
	code = tn.outbox.code(t, "13200000000")
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/phone", tok, map[string]any{"password": "wrong12", "verifiable_code": code}), "password")
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/phone", tok, map[string]any{"verifiable_code": code}), "password")
	expect(t, rp.call("DELETE", "/api/v2/user/phone", tok, map[string]any{"password": "secret1", "verifiable_code": code}), http.StatusNoContent)
	m = expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t)
	if m["phone"] != nil {
		t.Fatalf("phone still bound: %v", m)
	}
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/phone", tok, map[string]any{"password": "secret1", "verifiable_code": code}), "phone")
	// The number is free again: somebody else may register it.
	tn.clock.Add(61 * time.Second)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13200000000"}), http.StatusAccepted)

	// Unbind the e-mail the same way.
	tn.clock.Add(61 * time.Second)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"email": "binder@example.com"}), http.StatusAccepted)
	code = tn.outbox.code(t, "binder@example.com")
	expect(t, rp.call("DELETE", "/api/v2/user/email", tok, map[string]any{"password": "secret1", "verifiable_code": code}), http.StatusNoContent)
	m = expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t)
	if m["email"] != nil || m["phone"] != nil {
		t.Fatalf("contacts still bound: %v", m)
	}
	// Still able to log in by name.
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "binder", "password": "secret1"}), http.StatusOK)
}
