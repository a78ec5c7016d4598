package hserve_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// TestSDKMiniProgramBuild drives the real minapp-sdk mini-program build
// (testdata/sdk/wx.js) with a wx stand-in over the fake WeChat: 30 app
// instances log the same new WeChat user in at once and get one user, and
// a password user links WeChat and is then found by silent login; a
// getPhoneNumber button logs a new user in with the number WeChat verified.
func TestSDKMiniProgramBuild(t *testing.T) {
	tn := newTenant(t)
	const parallel = 30
	var out struct{ ParallelUser, Carol, Dora int64 }
	runNode(t, "wx.js", map[string]string{
		"HOST": tn.srv.URL, "CLIENT_ID": clientID, "WECHAT": tn.wxBase, "PARALLEL": strconv.Itoa(parallel),
	}, &out)

	// Exactly one user holds the openid, in the management list too.
	admin := "Authorization: Bearer " + adminToken
	list := expect(t, tn.call("GET", "/userve/v2.0/miniapp/user_profile/?openid=o-parallel", nil, admin), http.StatusOK).obj(t)
	meta, _ := list["meta"].(map[string]any)
	objects, _ := list["objects"].([]any)
	if meta["total_count"] != float64(1) || len(objects) != 1 {
		t.Fatalf("%d parallel first logins: %v users with the openid, want 1: %s", parallel, meta["total_count"], fmt.Sprint(objects))
	}
	if got := objects[0].(map[string]any)["user_id"]; got != float64(out.ParallelUser) {
		t.Fatalf("listed user %v, the SDK logged in as %d", got, out.ParallelUser)
	}
	if calls := tn.wechat.Calls("jscode2session"); calls < parallel+1 {
		t.Fatalf("%d jscode2session calls for %d logins: the SDK did not log in from each app", calls, parallel+1)
	}
	carol := expect(t, tn.call("GET", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", out.Carol), nil, admin), http.StatusOK).obj(t)
	if carol["openid"] != "o-carol" || carol["_username"] != "carol_wx" {
		t.Fatalf("linked user: %v", carol)
	}
	dora := expect(t, tn.call("GET", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", out.Dora), nil, admin), http.StatusOK).obj(t)
	if dora["_phone"] != "13500000001" || dora["_phone_verified"] != true || dora["openid"] != "o-dora" {
		t.Fatalf("phone-login user: %v", dora)
	}
}
