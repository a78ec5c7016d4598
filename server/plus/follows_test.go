package plus_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

func counts(t *testing.T, rp *replica, id int64) (followers, followings float64) {
	t.Helper()
	u := expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d", id), "", nil), http.StatusOK).obj(t)
	e := u["extra"].(map[string]any)
	return e["followers_count"].(float64), e["followings_count"].(float64)
}

func TestFollowsKeepExactCounters(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	a, at := tn.quickUser(rp, "fa_user")
	b, bt := tn.quickUser(rp, "fb_user")
	c, ct := tn.quickUser(rp, "fc_user")
	path := func(id int64) string { return fmt.Sprintf("/api/v2/user/followings/%d", id) }

	// Following twice counts once; unfollowing a stranger changes nothing.
	expect(t, rp.call("PUT", path(b), at, nil), http.StatusNoContent)
	expect(t, rp.call("PUT", path(b), at, nil), http.StatusNoContent)
	expect(t, rp.call("PUT", path(b), ct, nil), http.StatusNoContent)
	expect(t, rp.call("DELETE", path(a), ct, nil), http.StatusNoContent)
	expect(t, rp.call("DELETE", path(a), ct, nil), http.StatusNoContent)
	if fr, fg := counts(t, rp, b); fr != 2 || fg != 0 {
		t.Fatalf("b: followers %v followings %v", fr, fg)
	}
	if fr, fg := counts(t, rp, a); fr != 0 || fg != 1 {
		t.Fatalf("a: followers %v followings %v", fr, fg)
	}
	if fr, _ := counts(t, rp, c); fr != 0 {
		t.Fatalf("c followers %v", fr)
	}

	// Errors: yourself 422, unknown 404, no token 401.
	expectInvalid(t, rp.call("PUT", path(a), at, nil), "user")
	expect(t, rp.call("PUT", path(999999), at, nil), http.StatusNotFound)
	expect(t, rp.call("PUT", "/api/v2/user/followings/abc", at, nil), http.StatusNotFound)
	expect(t, rp.call("PUT", path(b), "", nil), http.StatusUnauthorized)

	// Lists: the caller's and a user's, with limit and offset.
	expect(t, rp.call("PUT", path(c), at, nil), http.StatusNoContent)
	l := expect(t, rp.call("GET", "/api/v2/user/followings", at, nil), http.StatusOK).list(t)
	if got := ids(t, l); len(got) != 2 || got[0] != c || got[1] != b && got[0] != b {
		t.Fatalf("a's followings = %v", got)
	}
	for _, u := range l {
		if u["following"] != true {
			t.Errorf("a's followings should be followed by a: %v", u)
		}
	}
	if got := ids(t, expect(t, rp.call("GET", "/api/v2/user/followings?limit=1&offset=1", at, nil), http.StatusOK).list(t)); len(got) != 1 {
		t.Fatalf("paged followings = %v", got)
	}
	if got := ids(t, expect(t, rp.call("GET", "/api/v2/user/followers", bt, nil), http.StatusOK).list(t)); len(got) != 2 {
		t.Fatalf("b's followers = %v", got)
	}
	if got := ids(t, expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d/followers", b), "", nil), http.StatusOK).list(t)); len(got) != 2 {
		t.Fatalf("GET /users/b/followers = %v", got)
	}
	if got := ids(t, expect(t, rp.call("GET", "/api/v2/users/fa_user/followings", "", nil), http.StatusOK).list(t)); len(got) != 2 {
		t.Fatalf("GET /users/fa_user/followings = %v", got)
	}
	expect(t, rp.call("GET", "/api/v2/users/nobody_here/followers", "", nil), http.StatusNotFound)
	expectInvalid(t, rp.call("GET", "/api/v2/user/followers?limit=0", bt, nil), "limit")
	expectInvalid(t, rp.call("GET", "/api/v2/user/followers?offset=-1", bt, nil), "offset")
	expect(t, rp.call("GET", "/api/v2/user/followers", "", nil), http.StatusUnauthorized)

	// Concurrent follow/unfollow storms settle on exact counts.
	done := make(chan bool)
	for i := 0; i < 16; i++ {
		go func(i int) {
			m := "PUT"
			if i%2 == 1 {
				m = "DELETE"
			}
			rp.call(m, path(a), bt, nil)
			done <- true
		}(i)
	}
	for i := 0; i < 16; i++ {
		<-done
	}
	following := 0.0
	rel := expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d", a), bt, nil), http.StatusOK).obj(t)
	if rel["following"] == true {
		following = 1
	}
	if fr, _ := counts(t, rp, a); fr != following {
		t.Fatalf("a's followers_count %v, but b follows a: %v", fr, following)
	}

	// Deleting a user removes their edges and fixes the others' counters.
	if err := rp.store.DeleteUser(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, fg := counts(t, rp, a); fg != 1 {
		t.Fatalf("a's followings after b was deleted: %v", fg)
	}
	if _, fg := counts(t, rp, c); fg != 0 {
		t.Fatalf("c's followings after b was deleted: %v", fg)
	}
	expect(t, rp.call("GET", "/api/v2/user/followings", ct, nil), http.StatusOK)
}
