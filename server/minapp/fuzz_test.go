package minapp

import (
	"net/url"
	"testing"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/store"
)

// checkAccepted asserts what every accepted list query must satisfy: a
// valid filter that encodes to BSON, and a page within bounds.
func checkAccepted(t *testing.T, input string, q ListQuery, lim Limits) {
	t.Helper()
	if err := q.Filter.Validate(); err != nil {
		t.Fatalf("%q: accepted with an invalid filter: %v", input, err)
	}
	if _, err := bson.Marshal(q.Filter.BSON()); err != nil {
		t.Fatalf("%q: filter does not encode: %v", input, err)
	}
	if q.Limit < 1 || q.Limit > lim.Max || q.Offset < 0 || q.Offset > maxOffset {
		t.Fatalf("%q: page limit=%d offset=%d out of bounds", input, q.Limit, q.Offset)
	}
	checkStrings(t, input, q.Filter)
	for _, k := range q.Sort {
		if !store.ValidField(k.Field) {
			t.Fatalf("%q: sort on invalid field %q", input, k.Field)
		}
	}
}

func FuzzParseListV20(f *testing.F) {
	for _, seed := range []string{
		"nickname__contains=Tom&gender=1&created_at__gt=1483228800&order_by=-created_at",
		"created_at__gte=0&created_at__lte=253402300799&group__in=258,360&limit=1001&offset=3",
		"nickname=%00%FF&openid=o&unionid=u&user_id=9223372036854775807&order_by=user_id",
		"limit=99999999999999999999&offset=2147483647",
		"gender=1&gender=2", "foo=bar", "group__in=1,,2", "nickname__contains=.*(", "nickname__contains=%80%A8",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		values, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseListV20(values, testLimits)
		if err != nil {
			if _, ok := err.(*ParamError); !ok {
				t.Fatalf("%q: error of type %T: %v", raw, err, err)
			}
			return
		}
		checkAccepted(t, raw, q, testLimits)
		if !q.TotalCount {
			t.Fatalf("%q: v2.0 always counts", raw)
		}
	})
}

func FuzzParseWhere(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"nickname":"Tom"}`, `{"nickname":{"$contains":"T\u0000m"}}`,
		`{"$or":[{"gender":{"$in":[1,2]}},{"age":{"$range":[1,2]}}]}`,
		`{"$and":[{"created_at":{"$gt":1483228800}},{"birthday":{"$lte":"2020-01-01T00:00:00Z"}}]}`,
		`{"tags":{"$contains":"x"},"prefs":{"$isnull":true},"user_group":[1,2]}`,
		`{"score":{"$nin":[1.5,2e10]},"vip":{"$ne":true},"_email":{"$isnull":false}}`,
		`{"age":1e400}`, `{"$or":[{}]}`, `[1]`, `{"a":`, `{"gender":{"$eq":null}}`,
		`{"_banned":true}`, `{"_banned":{}}`, `{"$or":[{"_banned":{"$ne":false}},{"_banned":{"$eq":true,"$ne":true}}]}`,
	} {
		f.Add(seed)
	}
	s := testSchema()
	f.Fuzz(func(t *testing.T, raw string) {
		filter, err := ParseWhere(raw, s)
		if err != nil {
			if _, ok := err.(*WhereError); !ok {
				t.Fatalf("%q: error of type %T: %v", raw, err, err)
			}
			return
		}
		checkAccepted(t, raw, ListQuery{Filter: filter, Limit: 1}, testLimits)
	})
}

// checkStrings asserts every string in a filter is valid UTF-8: MongoDB
// refuses others, which would be a 500.
func checkStrings(t *testing.T, input string, f store.Filter) {
	t.Helper()
	for _, sub := range append(append([]store.Filter(nil), f.And...), f.Or...) {
		checkStrings(t, input, sub)
	}
	if f.Cond == nil {
		return
	}
	values := []any{f.Cond.Value}
	if list, ok := f.Cond.Value.([]any); ok {
		values = list
	}
	for _, v := range values {
		if s, ok := v.(string); ok && !utf8.ValidString(s) {
			t.Fatalf("%q: accepted invalid UTF-8 %q", input, s)
		}
	}
}
