package minapp

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/httpx"
)

// decode is how handlers decode bodies (json.Number for numbers).
func decode(t *testing.T, raw string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := httpx.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return m
}

// TestCustomFieldTypes checks every custom field type, accepted and refused.
func TestCustomFieldTypes(t *testing.T) {
	s := testSchema()
	accepted := map[string]map[string]any{
		`{"name":"tom"}`:              {"name": "tom"},
		`{"name":""}`:                 {"name": ""},
		`{"motto":"héllo"}`:           {"motto": "héllo"}, // 5 characters, 6 bytes
		`{"age":42}`:                  {"age": int64(42)},
		`{"age":-7}`:                  {"age": int64(-7)},
		`{"age":1e3}`:                 {"age": int64(1000)},
		`{"age":9223372036854775807}`: {"age": int64(9223372036854775807)},
		`{"score":1.25}`:              {"score": 1.25},
		`{"score":3}`:                 {"score": 3.0},
		`{"vip":true}`:                {"vip": true},
		`{"tags":["a",1,2.5,false,null,{"k":"v"}]}`:       nil, // maxLength 5: refused below
		`{"tags":["a",1,2.5,false,{"k":[1]}]}`:            {"tags": []any{"a", int64(1), 2.5, false, map[string]any{"k": []any{int64(1)}}}},
		`{"tags":[]}`:                                     {"tags": []any{}},
		`{"prefs":{"theme":"dark","n":{"x":1}}}`:          {"prefs": map[string]any{"theme": "dark", "n": map[string]any{"x": int64(1)}}},
		`{"prefs":{}}`:                                    {"prefs": map[string]any{}},
		`{"birthday":"2000-01-02T03:04:05.123456+08:00"}`: {"birthday": time.Date(2000, 1, 1, 19, 4, 5, 123000000, time.UTC)},
	}
	for raw, want := range accepted {
		set, unset, err := s.CustomUpdate(decode(t, raw))
		if want == nil {
			if err == nil {
				t.Errorf("%s: accepted", raw)
			}
			continue
		}
		if err != nil || len(unset) != 0 || !reflect.DeepEqual(set, want) {
			t.Errorf("%s: set %#v unset %v err %v; want %#v", raw, set, unset, err, want)
		}
	}
	refused := map[string]string{
		`{"name":1}`:                "field name must be a string, not a number",
		`{"name":["x"]}`:            "field name must be a string, not an array",
		`{"motto":"toolong"}`:       "longer than its maxLength 5",
		`{"age":"42"}`:              "field age must be an integer, not a string",
		`{"age":4.5}`:               "not an integer",
		`{"age":1e19}`:              "not an integer within 64 bits",
		`{"age":true}`:              "must be an integer, not a boolean",
		`{"score":"1.5"}`:           "field score must be a number, not a string",
		`{"score":1e999}`:           "not a finite",
		`{"vip":"true"}`:            "field vip must be a boolean, not a string",
		`{"vip":1}`:                 "field vip must be a boolean, not a number",
		`{"tags":"a"}`:              "field tags must be an array, not a string",
		`{"tags":[1,2,3,4,5,6]}`:    "more than its maxLength 5 items",
		`{"tags":[{"$set":1}]}`:     "must not start with '$'",
		`{"prefs":[]}`:              "field prefs must be an object, not an array",
		`{"prefs":{"a.b":1}}`:       "must not contain '.'",
		`{"prefs":{"":1}}`:          "must not be empty",
		`{"birthday":"2000-01-02"}`: "RFC 3339",
		`{"birthday":946782245}`:    "must be a date (RFC 3339 string), not a number",
		`{"nickname":"x"}`:          "nickname is a built-in field",
		`{"user_id":3}`:             "user_id is a built-in field",
		`{"_email":"a@b.c"}`:        "_email is a built-in field",
		`{"undeclared":1}`:          `field "undeclared" is not declared`,
		`{"age":null}`:              "field age is required and cannot be null",
	}
	for raw, fragment := range refused {
		_, _, err := s.CustomUpdate(decode(t, raw))
		if err == nil || !strings.Contains(err.Error(), fragment) {
			t.Errorf("%s: error %v, want %q", raw, err, fragment)
		}
	}
	deep := `{"prefs":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 21)
	if _, _, err := s.CustomUpdate(decode(t, deep)); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep object: %v", err)
	}
	set, unset, err := s.CustomUpdate(decode(t, `{"name":null,"vip":false}`))
	if err != nil || !reflect.DeepEqual(unset, []string{"name"}) || set["vip"] != false {
		t.Errorf("null unsets: set %v unset %v err %v", set, unset, err)
	}
	// Every problem is reported at once.
	_, _, err = s.CustomUpdate(decode(t, `{"name":1,"nickname":"x","zzz":1}`))
	if err == nil || strings.Count(err.Error(), ";") != 2 {
		t.Errorf("several problems: %v", err)
	}
}

func TestNewProfile(t *testing.T) {
	s := testSchema()
	p, err := s.NewProfile(decode(t, `{"nickname":"PCG","avatar":"https://x/y.jpg","gender":1,"city":"Guangzhou",
		"province":"Guangdong","country":"China","language":"zh_CN","openid":"o1","unionid":"u1",
		"user_group":[137,137,3],"_username":"jack_ma","_email":"Jack@Example.COM","_email_verified":true,
		"_phone":"+8613800000000","age":30,"name":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Nickname != "PCG" || p.Gender != 1 || p.City != "Guangzhou" || p.OpenID != "o1" || p.UnionID != "u1" ||
		!reflect.DeepEqual(p.Groups, []int64{137, 3}) || p.Username != "jack_ma" || p.Email != "jack@example.com" ||
		!p.EmailVerified || p.Phone != "+8613800000000" || p.PhoneVerified || p.Custom["age"] != int64(30) {
		t.Fatalf("profile %+v", p)
	}
	if _, ok := p.Custom["name"]; ok {
		t.Fatal("null custom field was stored")
	}
	for raw, fragment := range map[string]string{
		`{}`:                                "field age is required",
		`{"age":1,"user_id":5}`:             "user_id is assigned by the server",
		`{"age":1,"created_at":5}`:          "created_at is assigned by the server",
		`{"age":1,"gender":3}`:              "gender must be 0 (unknown), 1 (male) or 2 (female)",
		`{"age":1,"gender":"1"}`:            "gender must be an integer",
		`{"age":1,"nickname":5}`:            "nickname must be a string",
		`{"age":1,"openid":" o"}`:           "openid must not start or end with spaces",
		`{"age":1,"user_group":[0]}`:        "user_group: 0 is not an id",
		`{"age":1,"user_group":"1"}`:        "user_group must be an array",
		`{"age":1,"_username":"1abc"}`:      "must not start with a digit",
		`{"age":1,"_username":"abc"}`:       "2 to 12 display units",
		`{"age":1,"_username":"a b c d"}`:   "only letters, digits",
		`{"age":1,"_email":"not-an-email"}`: "is not an e-mail address",
		`{"age":1,"_email":"Bob <b@c.d>"}`:  "is not an e-mail address",
		`{"age":1,"_phone":"12"}`:           "_phone",
		`{"age":1,"_email_verified":true}`:  "_email_verified needs _email",
		`{"age":1,"_phone_verified":"yes"}`: "_phone_verified must be a boolean",
		`{"age":1,"mystery":1}`:             `unknown field "mystery"`,
		`{"age":"x"}`:                       "field age must be an integer",
	} {
		if _, err := s.NewProfile(decode(t, raw)); err == nil || !strings.Contains(err.Error(), fragment) {
			t.Errorf("%s: error %v, want %q", raw, err, fragment)
		}
	}
}

func TestValidUsername(t *testing.T) {
	for _, ok := range []string{"jack", "jack_ma_12345678901", "张三", "a张三", "_abc", "abcdefghijklmnopqrstuvwx"} {
		if err := ValidUsername(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "abc", "张", "9lives", "abcdefghijklmnopqrstuvwxy", "张三李四王五赵六钱七孙八周九", "a-b-c", "mail@x"} {
		if err := ValidUsername(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
