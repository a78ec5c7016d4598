package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

const v20 = "/userve/v2.0/miniapp/user_profile/"

// seedUsers creates four users a minute apart, starting at 1_600_000_000.
//
//	1 Tom      male    group 1   openid o1 unionid u1
//	2 Tommy    male    groups 1,2
//	3 tom      female  group 2
//	4 Anna     unknown
func seedUsers(t *testing.T, e *env) {
	t.Helper()
	g1 := num(t, e.do("POST", "/userve/v1/user-group/", map[string]any{"name": "g1"}).want(t, 201).body["id"])
	g2 := num(t, e.do("POST", "/userve/v1/user-group/", map[string]any{"name": "g2"}).want(t, 201).body["id"])
	if g1 != 1 || g2 != 2 {
		t.Fatalf("group ids %d %d", g1, g2)
	}
	users := []map[string]any{
		{"nickname": "Tom", "gender": 1, "user_group": []int{1}, "openid": "o1", "unionid": "u1", "age": 20},
		{"nickname": "Tommy", "gender": 1, "user_group": []int{1, 2}, "age": 30, "tags": []string{"a", "b"}},
		{"nickname": "tom", "gender": 2, "user_group": []int{2}, "vip": true},
		{"nickname": "Anna", "gender": 0},
	}
	for i, u := range users {
		e.clock.now = time.Unix(1_600_000_000+int64(i)*60, 0)
		if id := e.createUser(u); id != int64(i+1) {
			t.Fatalf("user id %d, want %d", id, i+1)
		}
	}
}

func TestV20EachFilter(t *testing.T) {
	e := newEnv(t)
	seedUsers(t, e)
	cases := map[string][]int64{
		"":                            {1, 2, 3, 4},
		"created_at__gte=1600000060":  {2, 3, 4},
		"created_at__gt=1600000060":   {3, 4},
		"created_at__lte=1600000060":  {1, 2},
		"created_at__lt=1600000060":   {1},
		"gender=1":                    {1, 2},
		"gender=2":                    {3},
		"gender=0":                    {4},
		"group__in=2":                 {2, 3},
		"group__in=1,2":               {1, 2, 3},
		"group__in=99":                {},
		"nickname=tom":                {3},
		"nickname__contains=Tom":      {1, 2},
		"nickname__contains=om":       {1, 2, 3},
		"nickname__contains=.":        {},
		"openid=o1":                   {1},
		"unionid=u1":                  {1},
		"user_id=3":                   {3},
		"order_by=-created_at":        {4, 3, 2, 1},
		"order_by=created_at":         {1, 2, 3, 4},
		"order_by=-user_id":           {4, 3, 2, 1},
		"order_by=user_id&gender=1":   {1, 2},
		"gender=1&group__in=2":        {2},
		"nickname__contains=T%C3%B6m": {},
	}
	for query, want := range cases {
		r := e.do("GET", v20+"?"+query, nil).want(t, http.StatusOK)
		if got := ids(t, r); !slices.Equal(got, want) {
			t.Errorf("%s: users %v, want %v", query, got, want)
		}
		if total := num(t, meta(t, r)["total_count"]); total != int64(len(want)) {
			t.Errorf("%s: total_count %d, want %d", query, total, len(want))
		}
	}
}

// TestSeedListExample is the seed's axios example, as written.
func TestSeedListExample(t *testing.T) {
	e := newEnv(t)
	seedUsers(t, e)
	q := url.Values{"nickname__contains": {"Tom"}, "gender": {"1"}, "created_at__gt": {"1483228800"}, "order_by": {"-created_at"}}
	for _, prefix := range []string{"/userve", "/oserve"} {
		r := e.do("GET", prefix+"/v2.0/miniapp/user_profile/?"+q.Encode(), nil).want(t, http.StatusOK)
		if got := ids(t, r); !slices.Equal(got, []int64{2, 1}) {
			t.Fatalf("%s: users %v, want [2 1]", prefix, got)
		}
		m := meta(t, r)
		if num(t, m["limit"]) != 20 || m["next"] != nil || num(t, m["offset"]) != 0 || m["previous"] != nil || num(t, m["total_count"]) != 2 {
			t.Fatalf("meta %v", m)
		}
		obj := r.body["objects"].([]any)[1].(map[string]any)
		for _, key := range []string{"avatar", "city", "country", "created_at", "gender", "nickname", "openid",
			"unionid", "province", "user_group", "user_id", "updated_at", "language", "age", "name"} {
			if _, ok := obj[key]; !ok {
				t.Errorf("profile lacks %q: %v", key, obj)
			}
		}
		if num(t, obj["created_at"]) != 1_600_000_000 || obj["openid"] != "o1" || num(t, obj["user_group"].([]any)[0]) != 1 {
			t.Errorf("profile %v", obj)
		}
		if _, ok := obj["password_hash"]; ok {
			t.Error("password hash in output")
		}
	}
}

func TestV20Paging(t *testing.T) {
	e := newEnv(t)
	seedUsers(t, e)
	r := e.do("GET", v20+"?limit=3&gender=1&order_by=user_id", nil).want(t, 200)
	if m := meta(t, r); m["next"] != nil || m["previous"] != nil {
		t.Fatalf("single page meta %v", m)
	}
	// Walk the pages by following next, then back by previous.
	path := v20 + "?limit=3&order_by=user_id"
	var walked []int64
	var last response
	for path != "" {
		last = e.do("GET", path, nil).want(t, 200)
		walked = append(walked, ids(t, last)...)
		next, _ := meta(t, last)["next"].(string)
		path = next
	}
	if !slices.Equal(walked, []int64{1, 2, 3, 4}) {
		t.Fatalf("walked %v", walked)
	}
	prev, _ := meta(t, last)["previous"].(string)
	if prev != v20+"?limit=3&offset=0&order_by=user_id" {
		t.Fatalf("previous = %q", prev)
	}
	// Offset past the end: empty page, no next, previous one page back.
	r = e.do("GET", v20+"?offset=10&limit=3", nil).want(t, 200)
	m := meta(t, r)
	if len(ids(t, r)) != 0 || m["next"] != nil || m["previous"] != v20+"?limit=3&offset=7" || num(t, m["total_count"]) != 4 {
		t.Fatalf("past the end: %s", r.raw)
	}
	// A limit above the maximum is clamped and shown.
	r = e.do("GET", v20+"?limit=5000", nil).want(t, 200)
	if num(t, meta(t, r)["limit"]) != 1000 || len(ids(t, r)) != 4 {
		t.Fatalf("clamped limit: %s", r.raw)
	}
	r = e.do("GET", v20+"?limit=2&offset=1", nil).want(t, 200)
	m = meta(t, r)
	if !slices.Equal(ids(t, r), []int64{2, 3}) || m["next"] != v20+"?limit=2&offset=3" || m["previous"] != v20+"?limit=2&offset=0" {
		t.Fatalf("middle page: %s", r.raw)
	}
}

func TestV20BadParameters(t *testing.T) {
	e := newEnv(t)
	for query, param := range map[string]string{
		"nickname__icontains=t": "nickname__icontains",
		"gender=9":              "gender",
		"created_at__gt=soon":   "created_at__gt",
		"limit=0":               "limit",
		"offset=-3":             "offset",
		"order_by=avatar":       "order_by",
		"user_id=1&user_id=2":   "user_id",
	} {
		e.do("GET", v20+"?"+query, nil).wantError(t, http.StatusBadRequest, `"`+param+`"`)
	}
	// url.Values would silently drop this pair and widen the filter.
	e.do("GET", v20+"?group__in=1;2", nil).wantError(t, http.StatusBadRequest, "semicolon")
	e.do("GET", v20+"?nickname=%zz", nil).wantError(t, http.StatusBadRequest, "malformed query string")
}

func TestV22Where(t *testing.T) {
	e := newEnv(t)
	seedUsers(t, e)
	v22 := "/oserve/v2.2/miniapp/user_profile/"
	cases := map[string][]int64{
		`{"nickname":{"$eq":"Tom"}}`:                         {1},
		`{"nickname":{"$ne":"Tom"}}`:                         {2, 3, 4},
		`{"user_id":{"$lt":2}}`:                              {1},
		`{"user_id":{"$lte":2}}`:                             {1, 2},
		`{"created_at":{"$gt":1600000060}}`:                  {3, 4},
		`{"created_at":{"$gte":1600000060}}`:                 {2, 3, 4},
		`{"nickname":{"$contains":"omm"}}`:                   {2},
		`{"gender":{"$in":[0,2]}}`:                           {3, 4},
		`{"gender":{"$nin":[0,2]}}`:                          {1, 2},
		`{"openid":{"$isnull":true}}`:                        {2, 3, 4},
		`{"openid":{"$isnull":false}}`:                       {1},
		`{"age":{"$range":[20,25]}}`:                         {1},
		`{"age":{"$gte":25}}`:                                {2},
		`{"vip":true}`:                                       {3},
		`{"tags":{"$contains":"b"}}`:                         {2},
		`{"user_group":{"$contains":2}}`:                     {2, 3},
		`{"$or":[{"gender":0},{"age":20}]}`:                  {1, 4},
		`{"$and":[{"gender":1},{"user_group":{"$in":[2]}}]}`: {2},
		`{"$or":[{"$and":[{"gender":1},{"age":30}]},{"vip":{"$isnull":false}}]}`: {2, 3},
	}
	for where, want := range cases {
		r := e.do("GET", v22+"?where="+url.QueryEscape(where), nil).want(t, http.StatusOK)
		if got := ids(t, r); !slices.Equal(got, want) {
			t.Errorf("%s: users %v, want %v", where, got, want)
		}
		if _, ok := meta(t, r)["total_count"]; ok {
			t.Errorf("%s: total_count without return_total_count=1", where)
		}
	}
	r := e.do("GET", v22+"?return_total_count=1&order_by=-age&limit=1&where="+url.QueryEscape(`{"age":{"$isnull":false}}`), nil).want(t, 200)
	if got := ids(t, r); !slices.Equal(got, []int64{2}) || num(t, meta(t, r)["total_count"]) != 2 || meta(t, r)["next"] == nil {
		t.Fatalf("sorted by custom field with count: %s", r.raw)
	}
	for query, fragment := range map[string]string{
		"where=" + url.QueryEscape(`{"nickname":{"$regex":"T"}}`): `unsupported operator "$regex"`,
		"where=" + url.QueryEscape(`{"password_hash":"x"}`):       `unknown field "password_hash"`,
		"where=" + url.QueryEscape(`{"gender":"1"}`):              "takes an integer",
		"where=" + url.QueryEscape(`{"gender":`):                  "not valid JSON",
		"order_by=prefs":                                          "sorting by this field is not supported",
		"order_by=shoe_size":                                      "unknown field",
		"return_total_count=2":                                    "must be 0 or 1",
		"gender=1":                                                "unknown parameter",
	} {
		e.do("GET", v22+"?"+query, nil).wantError(t, http.StatusBadRequest, fragment)
	}
}

// Concurrent creates with distinct unique values all succeed with distinct
// ids: NextID may repeat on FerretDB, and a repeated id must not surface as
// a conflict ("_username is already taken").
func TestConcurrentCreatesGetDistinctIDs(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	e := newEnvWith(t, testSpec(), mongofixture.URI(t), db.Name())
	const earlier, n = 4, 16
	for i := range earlier {
		e.createUser(map[string]any{"nickname": fmt.Sprint("early", i)})
	}
	// Rewind the id sequence as FerretDB's lost updates do: the next ids
	// handed out are taken, whichever create draws them.
	_, err := db.Collection(store.ColCounters).UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: store.ColProfiles}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: int64(0)}}}})
	if err != nil {
		t.Fatal(err)
	}
	created := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.do("POST", v20, map[string]any{"nickname": fmt.Sprint("racer", i), "_username": fmt.Sprint("racer_", i),
				"openid": fmt.Sprint("openid-", i)})
			if r.status != http.StatusCreated {
				t.Errorf("create %d: %d %s", i, r.status, r.raw)
				return
			}
			created[i] = num(t, r.body["user_id"])
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[int64]int{}
	for id := range int64(earlier) {
		seen[id+1] = -1
	}
	for i, id := range created {
		if j, ok := seen[id]; ok {
			t.Errorf("creates %d and %d both got id %d", j, i, id)
		}
		seen[id] = i
		r := e.do("GET", fmt.Sprintf("%s%d/", v20, id), nil).want(t, http.StatusOK)
		if r.body["_username"] != fmt.Sprint("racer_", i) {
			t.Errorf("id %d holds %s, want racer_%d", id, r.raw, i)
		}
	}
	if total := num(t, meta(t, e.do("GET", v20, nil).want(t, http.StatusOK))["total_count"]); total != earlier+n {
		t.Errorf("total_count %d, want %d", total, earlier+n)
	}
}

func TestDetailUpdateCreateDelete(t *testing.T) {
	e := newEnv(t)
	seedUsers(t, e)
	r := e.do("GET", v20+"2/", nil).want(t, 200)
	if r.body["nickname"] != "Tommy" || r.body["name"] != nil {
		t.Fatalf("detail %s", r.raw)
	}
	e.do("GET", v20+"99/", nil).wantError(t, 404, "user 99 not found")
	e.do("GET", v20+"abc/", nil).wantError(t, 400, `"abc"`)

	// The seed's PUT, with the tenant's custom string field "name".
	e.clock.now = time.Unix(1_700_000_000, 0)
	r = e.do("PUT", v20+"2/", map[string]any{"name": "tom"}).want(t, 200)
	if r.body["name"] != "tom" || r.body["nickname"] != "Tommy" || num(t, r.body["updated_at"]) != 1_700_000_000 || num(t, r.body["age"]) != 30 {
		t.Fatalf("after PUT: %s", r.raw)
	}
	if got := e.do("GET", "/oserve/v2.0/miniapp/user_profile/2/", nil).want(t, 200); got.body["name"] != "tom" {
		t.Fatalf("PUT not stored: %s", got.raw)
	}
	e.do("PUT", v20+"2/", map[string]any{"name": 5}).wantError(t, 400, "field name must be a string")
	e.do("PUT", v20+"2/", map[string]any{"nickname": "x"}).wantError(t, 400, "nickname is a built-in field")
	e.do("PUT", v20+"2/", map[string]any{"shoe_size": 44}).wantError(t, 400, `"shoe_size" is not declared`)
	e.do("PUT", v20+"99/", map[string]any{"name": "x"}).wantError(t, 404, "user 99 not found")
	e.doAuth("PUT", v20+"2/", map[string]any{"name": "x"}, "").wantError(t, 401)
	e.do("PUT", v20+"2/", `["name"]`).wantError(t, 400, "must be a JSON object")
	e.do("PUT", v20+"2/", `null`).wantError(t, 400, "JSON object")
	r = e.do("PUT", v20+"2/", map[string]any{"name": nil, "tags": []string{"z"}}).want(t, 200)
	if r.body["name"] != nil || fmt.Sprint(r.body["tags"]) != "[z]" {
		t.Fatalf("unset and set: %s", r.raw)
	}

	// Create: 201 with the object; taken identities are 400s naming them.
	r = e.do("POST", "/userve/v2.2/miniapp/user_profile/", map[string]any{
		"nickname": "New", "openid": "o2", "unionid": "u2", "_username": "newbie", "_email": "New@X.io",
		"_phone": "13800000000", "birthday": "1990-05-06T07:08:09Z", "prefs": map[string]any{"k": "v"},
	}).want(t, 201)
	if num(t, r.body["user_id"]) != 5 || r.body["_email"] != "new@x.io" || r.body["_email_verified"] != false ||
		r.body["birthday"] != "1990-05-06T07:08:09Z" || r.header.Get("Location") != "/userve/v2.2/miniapp/user_profile/5/" {
		t.Fatalf("created: %s %v", r.raw, r.header)
	}
	for body, field := range map[string]string{
		`{"openid":"o2"}`:          "openid",
		`{"unionid":"u1"}`:         "unionid",
		`{"_username":"newbie"}`:   "_username",
		`{"_email":"NEW@x.io"}`:    "_email",
		`{"_phone":"13800000000"}`: "_phone",
	} {
		e.do("POST", v20, body).wantError(t, 400, field+" is already taken")
	}
	e.do("POST", v20, `{"user_group":[1,77]}`).wantError(t, 400, "user_group: no group with id 77")
	e.do("POST", v20, `{"user_id":9}`).wantError(t, 400, "user_id is assigned by the server")

	// Delete: 204, then gone; the group loses the member.
	if n := num(t, e.do("GET", "/userve/v1/user-group/1/", nil).want(t, 200).body["members"]); n != 2 {
		t.Fatalf("group 1 has %d members", n)
	}
	e.do("DELETE", v20+"1/", nil).want(t, 204)
	e.do("GET", v20+"1/", nil).wantError(t, 404)
	e.do("DELETE", v20+"1/", nil).wantError(t, 404)
	if n := num(t, e.do("GET", "/userve/v1/user-group/1/", nil).want(t, 200).body["members"]); n != 1 {
		t.Fatalf("group 1 has %d members after a member's delete", n)
	}
	// The deleted user's openid is free again.
	e.do("POST", v20, `{"openid":"o1"}`).want(t, 201)
}

func TestRequiredCustomField(t *testing.T) {
	spec := testSpec()
	spec.Profile.CustomFields[2].Required = true // age
	e := newEnvWith(t, spec, mongofixture.URI(t), "")
	e.do("POST", v20, `{"nickname":"x"}`).wantError(t, 400, "field age is required")
	id := e.createUser(map[string]any{"age": 3})
	e.do("PUT", fmt.Sprintf("%s%d/", v20, id), `{"age":null}`).wantError(t, 400, "required")
}

func TestCustomFieldTypeChecksOverHTTP(t *testing.T) {
	e := newEnv(t)
	id := e.createUser(map[string]any{})
	path := fmt.Sprintf("%s%d/", v20, id)
	good := map[string]any{
		"name": "x", "motto": "12345", "age": 7, "score": 2.5, "vip": false,
		"tags": []any{1, "a"}, "prefs": map[string]any{"a": []int{1}}, "birthday": "2024-02-29T23:59:59.5Z",
	}
	r := e.do("PUT", path, good).want(t, 200)
	if r.body["birthday"] != "2024-02-29T23:59:59.5Z" || num(t, r.body["age"]) != 7 || r.body["vip"] != false {
		t.Fatalf("stored values: %s", r.raw)
	}
	for body, fragment := range map[string]string{
		`{"name":true}`:             "field name must be a string",
		`{"motto":"123456"}`:        "maxLength 5",
		`{"age":"7"}`:               "field age must be an integer",
		`{"age":7.5}`:               "not an integer",
		`{"score":"2.5"}`:           "field score must be a number",
		`{"vip":"false"}`:           "field vip must be a boolean",
		`{"tags":{}}`:               "field tags must be an array",
		`{"tags":[1,2,3,4,5,6]}`:    "maxLength 5",
		`{"prefs":"a"}`:             "field prefs must be an object",
		`{"prefs":{"$where":1}}`:    "must not start with '$'",
		`{"birthday":"29/02/2024"}`: "RFC 3339",
	} {
		e.do("PUT", path, body).wantError(t, 400, fragment)
	}
	// Nothing of the refused bodies was applied.
	if r2 := e.do("GET", path, nil).want(t, 200); !strings.Contains(string(r2.raw), `"motto":"12345"`) {
		t.Fatalf("a refused PUT changed the profile: %s", r2.raw)
	}
}

// Odd but valid input reaches the store intact and never causes a 500.
func TestUnusualStrings(t *testing.T) {
	e := newEnv(t)
	odd := []string{"a\u0000b", "Tö😀m", `.*+?()[]{}|^$\`, "\u2028", strings.Repeat("长", 256)}
	for _, s := range odd {
		id := e.createUser(map[string]any{"nickname": s, "name": s, "prefs": map[string]any{"k": s}})
		r := e.do("GET", fmt.Sprintf("%s%d/", v20, id), nil).want(t, 200)
		if r.body["nickname"] != s || r.body["name"] != s {
			t.Errorf("%q came back as %q / %q", s, r.body["nickname"], r.body["name"])
		}
		q := url.Values{"nickname": {s}}
		if got := ids(t, e.do("GET", v20+"?"+q.Encode(), nil).want(t, 200)); !slices.Equal(got, []int64{id}) {
			t.Errorf("nickname=%q found %v", s, got)
		}
		q = url.Values{"nickname__contains": {string([]rune(s)[len([]rune(s))/2:])}}
		if got := ids(t, e.do("GET", v20+"?"+q.Encode(), nil).want(t, 200)); !slices.Contains(got, id) {
			t.Errorf("nickname__contains=%q found %v", q.Get("nickname__contains"), got)
		}
		quoted, _ := json.Marshal(s)
		// Invalid UTF-8 (a split character) is refused, not a 500.
		if len(s) > 2 {
			q = url.Values{"nickname__contains": {s[1:]}, "openid": {s[:len(s)-1]}}
			if !utf8.ValidString(s[1:]) || !utf8.ValidString(s[:len(s)-1]) {
				e.do("GET", v20+"?"+q.Encode(), nil).wantError(t, 400, "not valid UTF-8")
			}
		}
		w := url.Values{"where": {fmt.Sprintf(`{"name":{"$contains":%s}}`, quoted)}}
		if got := ids(t, e.do("GET", "/userve/v2.2/miniapp/user_profile/?"+w.Encode(), nil).want(t, 200)); !slices.Equal(got, []int64{id}) {
			t.Errorf("where name $contains %q found %v", s, got)
		}
	}
}
