package console

import (
	"bytes"
	"encoding/json"
	"net/http"

	"userve.dev/userve/server/httpx"
)

// call runs one management request as the view's admin. path is relative
// to the API prefix ("/v1/users/3/ban/"); body is JSON-encoded unless nil.
func (h *Handler) call(r *http.Request, v *view, method, path string, body any) Answer {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return Answer{Status: http.StatusBadRequest, Body: errorBody(err.Error())}
		}
	}
	return h.o.API.Do(r, v.Admin, method, h.o.Prefix+path, data)
}

// OK reports a 2xx answer.
func (a Answer) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Message is the API's error_msg (or the status text).
func (a Answer) Message() string {
	var e struct {
		Msg string `json:"error_msg"`
	}
	if json.Unmarshal(a.Body, &e) == nil && e.Msg != "" {
		return e.Msg
	}
	return http.StatusText(a.Status)
}

// Object decodes a JSON object answer, integers as int64.
func (a Answer) Object() map[string]any {
	m, _ := decode(a.Body).(map[string]any)
	return m
}

// List decodes a {"meta","objects"} answer.
func (a Answer) List() (objects []map[string]any, total int64) {
	m := a.Object()
	if meta, ok := m["meta"].(map[string]any); ok {
		total, _ = toInt(meta["total_count"])
	}
	items, _ := m["objects"].([]any)
	for _, it := range items {
		if o, ok := it.(map[string]any); ok {
			objects = append(objects, o)
		}
	}
	return objects, total
}

func decode(data []byte) any {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return httpx.Numbers(v)
}

func errorBody(msg string) []byte {
	data, _ := json.Marshal(map[string]string{"status": "error", "error_msg": msg})
	return data
}
