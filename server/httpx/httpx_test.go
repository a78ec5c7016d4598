package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUnmarshalMessages(t *testing.T) {
	type body struct {
		Name  string  `json:"name"`
		Users []int64 `json:"users"`
	}
	for raw, want := range map[string]string{
		``:                         "request body is empty",
		`   `:                      "request body is empty",
		`{"name":`:                 "unexpected end of input",
		`name=x`:                   "not valid JSON",
		`{"name":1}`:               `field "name" must be a string, not number`,
		`{"users":[1.5]}`:          `field "users" must be an integer, not number 1.5`,
		`{"users":"x"}`:            `field "users" must be a JSON array, not string`,
		`[]`:                       "request body must be a JSON object, not array",
		`{"nom":"x"}`:              `unknown field "nom"`,
		`{"name":"a"}{"name":"b"}`: "data after the JSON value",
		`{"name":"a"} x`:           "data after the JSON value",
	} {
		var b body
		err := Unmarshal([]byte(raw), &b)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", raw, err, want)
		}
		if _, ok := err.(*BodyError); err != nil && !ok {
			t.Errorf("%q: error of type %T", raw, err)
		}
	}
	var b body
	if err := Unmarshal([]byte(" {\"name\":\"a\",\"users\":[1]} \n"), &b); err != nil || b.Name != "a" || b.Users[0] != 1 {
		t.Fatalf("good body: %+v %v", b, err)
	}
}

func TestReadBodyLimit(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", MaxBody+1)))
	r.ContentLength = -1
	if _, err := ReadBody(r); err == nil || !strings.Contains(err.Error(), "exceeds 1048576 bytes") {
		t.Fatalf("over the limit: %v", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", MaxBody)))
	if data, err := ReadBody(r); err != nil || len(data) != MaxBody {
		t.Fatalf("at the limit: %d %v", len(data), err)
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, http.StatusTeapot, map[string]string{"url": "https://x/?a=1&b=<2>"})
	if w.Code != http.StatusTeapot || w.Header().Get("Content-Type") != "application/json; charset=utf-8" ||
		w.Body.String() != "{\"url\":\"https://x/?a=1&b=<2>\"}\n" {
		t.Fatalf("%d %v %q", w.Code, w.Header(), w.Body.String())
	}
}

func TestNumbersTurnsJSONNumbersIntoGoNumbers(t *testing.T) {
	d := json.NewDecoder(strings.NewReader(`{"a": 3, "b": [1.5, {"c": 9007199254740993}], "d": "4"}`))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	got := Numbers(v).(map[string]any)
	inner := got["b"].([]any)
	if got["a"] != int64(3) || inner[0] != 1.5 || inner[1].(map[string]any)["c"] != int64(9007199254740993) || got["d"] != "4" {
		t.Fatalf("Numbers = %#v", got)
	}
}
