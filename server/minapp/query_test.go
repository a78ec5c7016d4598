package minapp

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/store"
)

var testLimits = Limits{Default: 20, Max: 1000}

func testSchema() Schema {
	five := int32(5)
	return NewSchema([]v1alpha1.CustomField{
		{Name: "name", Type: v1alpha1.FieldString},
		{Name: "motto", Type: v1alpha1.FieldString, MaxLength: &five},
		{Name: "age", Type: v1alpha1.FieldInteger, Required: true},
		{Name: "score", Type: v1alpha1.FieldNumber},
		{Name: "vip", Type: v1alpha1.FieldBoolean},
		{Name: "tags", Type: v1alpha1.FieldArray, MaxLength: &five},
		{Name: "prefs", Type: v1alpha1.FieldObject},
		{Name: "birthday", Type: v1alpha1.FieldDate},
	})
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestParseListV20SeedExample(t *testing.T) {
	// The seed's axios example, as axios encodes it.
	q := mustQuery(t, "nickname__contains=Tom&gender=1&created_at__gt=1483228800&order_by=-created_at")
	got, err := ParseListV20(q, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := ListQuery{
		Filter: store.Filter{And: []store.Filter{
			store.Where(store.FieldCreatedAt, store.OpGt, time.Unix(1483228800, 0).UTC()),
			store.Where(store.FieldGender, store.OpEq, int64(1)),
			store.Where(store.FieldNickname, store.OpContains, "Tom"),
		}},
		Sort:       []store.SortKey{{Field: store.FieldCreatedAt, Desc: true}},
		Limit:      20,
		TotalCount: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseListV20EachFilter(t *testing.T) {
	t0 := time.Unix(1483228800, 0).UTC()
	cases := map[string]store.Filter{
		"created_at__gte=1483228800": store.Where(store.FieldCreatedAt, store.OpGte, t0),
		"created_at__lte=1483228800": store.Where(store.FieldCreatedAt, store.OpLte, t0),
		"created_at__gt=1483228800":  store.Where(store.FieldCreatedAt, store.OpGt, t0),
		"created_at__lt=1483228800":  store.Where(store.FieldCreatedAt, store.OpLt, t0),
		"gender=0":                   store.Where(store.FieldGender, store.OpEq, int64(0)),
		"gender=2":                   store.Where(store.FieldGender, store.OpEq, int64(2)),
		"group__in=258,360":          store.Where(store.FieldGroups, store.OpIn, []any{int64(258), int64(360)}),
		"nickname=Tom":               store.Where(store.FieldNickname, store.OpEq, "Tom"),
		"nickname__contains=o":       store.Where(store.FieldNickname, store.OpContains, "o"),
		"openid=abc":                 store.Where(store.FieldOpenID, store.OpEq, "abc"),
		"unionid=def":                store.Where(store.FieldUnionID, store.OpEq, "def"),
		"user_id=36619758":           store.Where(store.FieldID, store.OpEq, int64(36619758)),
	}
	for raw, want := range cases {
		got, err := ParseListV20(mustQuery(t, raw), testLimits)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if !reflect.DeepEqual(got.Filter, want) {
			t.Errorf("%s: filter %+v, want %+v", raw, got.Filter, want)
		}
	}
}

func TestParseListV20SortAndPaging(t *testing.T) {
	for raw, want := range map[string]store.SortKey{
		"order_by=created_at":  {Field: store.FieldCreatedAt},
		"order_by=-created_at": {Field: store.FieldCreatedAt, Desc: true},
		"order_by=user_id":     {Field: store.FieldID},
		"order_by=-user_id":    {Field: store.FieldID, Desc: true},
	} {
		got, err := ParseListV20(mustQuery(t, raw), testLimits)
		if err != nil || len(got.Sort) != 1 || got.Sort[0] != want {
			t.Errorf("%s: %+v, %v", raw, got.Sort, err)
		}
	}
	for raw, want := range map[string][2]int64{
		"":                           {20, 0},
		"limit=5&offset=10":          {5, 10},
		"limit=1000":                 {1000, 0},
		"limit=1001":                 {1000, 0},
		"limit=99999999999999999999": {1000, 0},
		"offset=2147483647":          {20, 2147483647},
	} {
		got, err := ParseListV20(mustQuery(t, raw), testLimits)
		if err != nil || got.Limit != want[0] || got.Offset != want[1] {
			t.Errorf("%q: limit %d offset %d (%v), want %v", raw, got.Limit, got.Offset, err, want)
		}
	}
}

func TestParseListV20Rejects(t *testing.T) {
	for raw, param := range map[string]string{
		"foo=1":                       "foo",
		"nickname__startswith=T":      "nickname__startswith",
		"created_at=1":                "created_at",
		"created_at__gt=yesterday":    "created_at__gt",
		"created_at__gt=-5":           "created_at__gt",
		"created_at__lt=1e9":          "created_at__lt",
		"gender=3":                    "gender",
		"gender=male":                 "gender",
		"group__in=1,,2":              "group__in",
		"group__in=a":                 "group__in",
		"group__in=0":                 "group__in",
		"user_id=0":                   "user_id",
		"user_id=x":                   "user_id",
		"order_by=nickname":           "order_by",
		"order_by=created_at,user_id": "order_by",
		"limit=0":                     "limit",
		"limit=-1":                    "limit",
		"limit=ten":                   "limit",
		"offset=-1":                   "offset",
		"offset=2147483648":           "offset",
		"offset=1.5":                  "offset",
		"nickname=":                   "nickname",
		"gender=1&gender=2":           "gender",
		"where={}":                    "where",
	} {
		_, err := ParseListV20(mustQuery(t, raw), testLimits)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		pe, ok := err.(*ParamError)
		if !ok || pe.Param != param || !strings.Contains(err.Error(), `"`+param+`"`) {
			t.Errorf("%s: error %v does not name %q", raw, err, param)
		}
	}
}

func TestPageLinks(t *testing.T) {
	u, _ := url.Parse("/oserve/v2.0/miniapp/user_profile/?nickname=T%C3%B6m&limit=2&offset=4")
	next, prev := pageLinks(u, 2, 4, true)
	if *next != "/oserve/v2.0/miniapp/user_profile/?limit=2&nickname=T%C3%B6m&offset=6" {
		t.Errorf("next = %s", *next)
	}
	if *prev != "/oserve/v2.0/miniapp/user_profile/?limit=2&nickname=T%C3%B6m&offset=2" {
		t.Errorf("previous = %s", *prev)
	}
	u, _ = url.Parse("/userve/v2.0/miniapp/user_profile/?offset=1&limit=5000")
	next, prev = pageLinks(u, 1000, 1, false)
	if next != nil || *prev != "/userve/v2.0/miniapp/user_profile/?limit=1000&offset=0" {
		t.Errorf("next %v previous %v", next, *prev)
	}
	next, prev = pageLinks(u, 20, 0, false)
	if next != nil || prev != nil {
		t.Errorf("single page: next %v previous %v", next, prev)
	}
}

func TestParseWhereOperators(t *testing.T) {
	s := testSchema()
	bday := time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)
	w := store.Where
	cases := map[string]store.Filter{
		`{}`:                                       {},
		`{"nickname":"Tom"}`:                       w("nickname", store.OpEq, "Tom"),
		`{"nickname":{"$eq":"Tom"}}`:               w("nickname", store.OpEq, "Tom"),
		`{"nickname":{"$ne":"Tom"}}`:               w("nickname", store.OpNe, "Tom"),
		`{"nickname":{"$contains":"om"}}`:          w("nickname", store.OpContains, "om"),
		`{"gender":{"$in":[1,2]}}`:                 w("gender", store.OpIn, []any{int64(1), int64(2)}),
		`{"gender":{"$nin":[0]}}`:                  w("gender", store.OpNin, []any{int64(0)}),
		`{"created_at":{"$gt":1483228800}}`:        w("created_at", store.OpGt, time.Unix(1483228800, 0).UTC()),
		`{"updated_at":{"$lte":0}}`:                w("updated_at", store.OpLte, time.Unix(0, 0).UTC()),
		`{"user_id":{"$lt":5}}`:                    w("_id", store.OpLt, int64(5)),
		`{"id":{"$gte":5}}`:                        w("_id", store.OpGte, int64(5)),
		`{"openid":{"$isnull":true}}`:              w("openid", store.OpIsNull, true),
		`{"user_group":{"$contains":7}}`:           w("groups", store.OpEq, int64(7)),
		`{"user_group":{"$in":[7,8]}}`:             w("groups", store.OpIn, []any{int64(7), int64(8)}),
		`{"user_group":[7,8]}`:                     w("groups", store.OpEq, []any{int64(7), int64(8)}),
		`{"_email":"a@b.c"}`:                       w("email", store.OpEq, "a@b.c"),
		`{"_phone_verified":true}`:                 w("phone_verified", store.OpEq, true),
		`{"age":{"$range":[18,30]}}`:               store.All(w("custom.age", store.OpGte, int64(18)), w("custom.age", store.OpLte, int64(30))),
		`{"age":{"$gt":1,"$lt":9}}`:                store.All(w("custom.age", store.OpGt, int64(1)), w("custom.age", store.OpLt, int64(9))),
		`{"age":2.0}`:                              w("custom.age", store.OpEq, int64(2)),
		`{"score":{"$gte":1.5}}`:                   w("custom.score", store.OpGte, 1.5),
		`{"score":3}`:                              w("custom.score", store.OpEq, 3.0),
		`{"vip":{"$ne":false}}`:                    w("custom.vip", store.OpNe, false),
		`{"tags":{"$contains":"go"}}`:              w("custom.tags", store.OpEq, "go"),
		`{"tags":{"$in":["go",1,true]}}`:           w("custom.tags", store.OpIn, []any{"go", int64(1), true}),
		`{"prefs":{"$isnull":false}}`:              w("custom.prefs", store.OpIsNull, false),
		`{"birthday":"2000-01-02T11:04:05+08:00"}`: w("custom.birthday", store.OpEq, bday),
		`{"$and":[{"gender":1},{"age":2}]}`:        store.All(w("gender", store.OpEq, int64(1)), w("custom.age", store.OpEq, int64(2))),
		`{"$or":[{"gender":1},{"age":2}]}`:         {Or: []store.Filter{w("gender", store.OpEq, int64(1)), w("custom.age", store.OpEq, int64(2))}},
		`{"$or":[{"gender":1},{}]}`:                {},
	}
	for raw, want := range cases {
		got, err := ParseWhere(raw, s)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", raw, got, want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: invalid filter: %v", raw, err)
		}
	}
}

func TestParseWhereRejects(t *testing.T) {
	s := testSchema()
	for raw, fragment := range map[string]string{
		`not json`:                            "not valid JSON",
		`[]`:                                  "must be a JSON object",
		`{"a":1}{}`:                           "data after",
		`{"nope":1}`:                          `unknown field "nope"`,
		`{"password_hash":"x"}`:               `unknown field "password_hash"`,
		`{"nickname":{"$regex":"x"}}`:         `unsupported operator "$regex"`,
		`{"nickname":{"$range":["a","b"]}}`:   "$range is not supported on string",
		`{"vip":{"$gt":true}}`:                "$gt is not supported on boolean",
		`{"prefs":{"$eq":{}}}`:                "not supported on object",
		`{"prefs":{"a":1}}`:                   `unsupported operator "a"`,
		`{"nickname":{}}`:                     "no operator",
		`{"$not":{"gender":1}}`:               "unsupported operator \"$not\"",
		`{"$and":[]}`:                         "non-empty list",
		`{"$or":{"gender":1}}`:                "non-empty list",
		`{"$or":[1]}`:                         "list of objects",
		`{"gender":"1"}`:                      "takes an integer",
		`{"gender":1.5}`:                      "not an integer",
		`{"age":1e400}`:                       "not a number within range",
		`{"score":1e400}`:                     "not a finite",
		`{"nickname":null}`:                   "not null",
		`{"created_at":{"$gt":-1}}`:           "not a unix timestamp",
		`{"created_at":{"$gt":"2020-01-01"}}`: "takes a unix timestamp",
		`{"birthday":{"$gt":"yesterday"}}`:    "RFC 3339",
		`{"age":{"$in":[]}}`:                  "non-empty list",
		`{"age":{"$in":5}}`:                   "non-empty list",
		`{"age":{"$range":[1]}}`:              "[low, high]",
		`{"age":{"$isnull":1}}`:               "true or false",
		`{"tags":{"$contains":{"a":1}}}`:      "as elements",
		`{"user_group":{"$contains":"x"}}`:    "group ids",
		`{"nickname":{"$contains":5}}`:        "takes a string",
	} {
		_, err := ParseWhere(raw, s)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		if !strings.Contains(err.Error(), fragment) {
			t.Errorf("%s: error %q lacks %q", raw, err, fragment)
		}
	}
	deep := strings.Repeat(`{"$and":[`, 20) + `{"gender":1}` + strings.Repeat(`]}`, 20)
	if _, err := ParseWhere(deep, s); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	var many []string
	for range store.MaxFilterConds + 1 {
		many = append(many, `{"gender":1}`)
	}
	if _, err := ParseWhere(`{"$or":[`+strings.Join(many, ",")+`]}`, s); err == nil || !strings.Contains(err.Error(), "conditions") {
		t.Errorf("too many conditions: %v", err)
	}
}

func TestParseListV22(t *testing.T) {
	s := testSchema()
	got, err := ParseListV22(mustQuery(t, `where={"gender":1}&order_by=-age&limit=5&offset=5&return_total_count=1`), testLimits, s)
	if err != nil {
		t.Fatal(err)
	}
	if !got.TotalCount || got.Limit != 5 || got.Offset != 5 || got.Sort[0] != (store.SortKey{Field: "custom.age", Desc: true}) {
		t.Fatalf("got %+v", got)
	}
	got, err = ParseListV22(url.Values{}, testLimits, s)
	if err != nil || got.TotalCount || got.Limit != 20 || !got.Filter.IsEmpty() {
		t.Fatalf("defaults: %+v %v", got, err)
	}
	for raw, param := range map[string]string{
		"return_total_count=yes": "return_total_count",
		"order_by=tags":          "order_by",
		"order_by=prefs":         "order_by",
		"order_by=nope":          "order_by",
		"order_by=-":             "order_by",
		"where=":                 "where",
		"where={\"x\":1}":        "where",
		"nickname=Tom":           "nickname",
	} {
		_, err := ParseListV22(mustQuery(t, raw), testLimits, s)
		pe, ok := err.(*ParamError)
		if !ok || pe.Param != param {
			t.Errorf("%s: %v, want an error naming %s", raw, err, param)
		}
	}
}
