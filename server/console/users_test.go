package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

var userLinks = regexp.MustCompile(`<a href="/userve/console/users/(\d+)/">`)

// The user list's every filter, alone: each shows exactly the users the
// API's where selects, with the total; a malformed filter names itself
// (400) instead of being dropped.
func TestConsoleUserListFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mk := func(p *store.Profile) int64 {
		if err := e.store.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(48 * time.Hour)
		return p.ID
	}
	day := func(offset int) string { return e.clock.Now().AddDate(0, 0, offset).Format(time.DateOnly) }
	first := day(0)
	ann := mk(&store.Profile{Nickname: "Annie", Gender: 2, OpenID: "o-ann", Custom: map[string]any{"vip": true, "motto": "carpe"}})
	bob := mk(&store.Profile{Nickname: "Bobby", Gender: 1, UnionID: "u-bob", Custom: map[string]any{"vip": false, "level": int64(4)}})
	cat := mk(&store.Profile{Nickname: "Cathy", Gender: 2, Custom: map[string]any{"level": int64(4)}})
	status, g := e.api("POST", "/userve/v1/user-group/", map[string]any{"name": "vip"})
	if status != http.StatusCreated {
		t.Fatalf("group: %d %v", status, g)
	}
	if status, _ := e.api("PATCH", "/userve/v1/miniapp/group/membership/", []any{map[string]any{"op": "add", "path": "/membership",
		"users": []int64{bob, cat}, "groups": []any{g["id"]}}}); status != http.StatusNoContent {
		t.Fatalf("membership: %d", status)
	}
	c := e.browser()
	e.signIn(c, adminToken)
	list := func(q url.Values) []string {
		t.Helper()
		p := e.get(c, "/users/?"+q.Encode()).want(t, http.StatusOK)
		var ids []string
		for _, m := range userLinks.FindAllStringSubmatch(p.body, -1) {
			ids = append(ids, m[1])
		}
		if q.Get("offset") == "" && !strings.Contains(p.body, fmt.Sprintf(`%d users`, len(ids))) {
			t.Fatalf("%s: the total does not match the %d rows: %.300s", q.Encode(), len(ids), p.body[strings.Index(p.body, `id="total"`):])
		}
		return ids
	}
	ids := func(us ...int64) string { return strings.Trim(fmt.Sprint(us), "[]") }
	for _, c := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{}, ids(cat, bob, ann)},
		{url.Values{"order": {"user_id"}}, ids(ann, bob, cat)},
		{url.Values{"nickname": {"nn"}}, ids(ann)},
		{url.Values{"nickname": {"nN"}}, ""}, // contains is case-sensitive, as the API's
		{url.Values{"gender": {"2"}}, ids(cat, ann)},
		{url.Values{"group": {fmt.Sprint(g["id"])}}, ids(cat, bob)},
		{url.Values{"created_from": {day(-3)}}, ids(cat)},
		{url.Values{"created_from": {first}, "created_to": {day(-4)}}, ids(bob, ann)},
		{url.Values{"openid": {"o-ann"}}, ids(ann)},
		{url.Values{"unionid": {"u-bob"}}, ids(bob)},
		{url.Values{"user_id": {fmt.Sprint(bob)}}, ids(bob)},
		{url.Values{"cf_vip": {"false"}}, ids(bob)},
		{url.Values{"cf_level": {"4"}, "gender": {"1"}}, ids(bob)},
		{url.Values{"cf_motto": {"arp"}}, ids(ann)},
		{url.Values{"limit": {"20"}, "offset": {"2"}, "order": {"user_id"}}, ids(cat)}, // of 3
	} {
		if got := strings.Join(list(c.q), " "); got != c.want {
			t.Errorf("%s: users %q, want %q", c.q.Encode(), got, c.want)
		}
	}
	for q, word := range map[string]string{"user_id=x": "User id", "created_from=2026-13-01": "Created from", "cf_level=4.5": "level"} {
		p := e.get(c, "/users/?"+q).want(t, http.StatusBadRequest)
		if !strings.Contains(p.body, `class="error" role="alert">`+word) {
			t.Errorf("%s: %.400s", q, p.body)
		}
	}
}
