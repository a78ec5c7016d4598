// Package httpx holds HTTP helpers both dialects share: strict JSON bodies
// with precise messages, JSON responses, the request body limit, and the
// answer to store trouble.
package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"userve.dev/userve/server/store"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Both dialects answer store trouble that passes by itself with 503, this
// message (in the dialect's shape) and Retry-After.
const (
	UnavailableMessage = "user store unavailable, try again"
	RetryAfterSeconds  = "2"
)

// StoreUnavailable reports whether err is store trouble that passes by
// itself (store.IsTransient: MongoDB away or slow, FerretDB busy, a
// contended wallet) and then sets Retry-After; the caller answers 503
// UnavailableMessage in its dialect's shape.
func StoreUnavailable(w http.ResponseWriter, err error) bool {
	if !store.IsTransient(err) {
		return false
	}
	w.Header().Set("Retry-After", RetryAfterSeconds)
	return true
}

// BodyError is a client mistake in a request body; its message names the
// problem and is safe to show.
type BodyError struct{ Msg string }

func (e *BodyError) Error() string { return e.Msg }

// ReadBody reads the whole body within MaxBody.
func ReadBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBody {
		return nil, &BodyError{Msg: fmt.Sprintf("request body exceeds %d bytes (1 MiB)", MaxBody)}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &BodyError{Msg: fmt.Sprintf("request body exceeds %d bytes (1 MiB)", MaxBody)}
		}
		return nil, &BodyError{Msg: "reading request body: " + err.Error()}
	}
	if len(data) > MaxBody {
		return nil, &BodyError{Msg: fmt.Sprintf("request body exceeds %d bytes (1 MiB)", MaxBody)}
	}
	return data, nil
}

// DecodeJSON decodes the request body into v strictly: one JSON value, no
// unknown fields, right types.
func DecodeJSON(r *http.Request, v any) error {
	data, err := ReadBody(r)
	if err != nil {
		return err
	}
	return Unmarshal(data, v)
}

// Unmarshal is DecodeJSON over bytes. Numbers decoded into interface values
// stay json.Number, so integers keep their precision.
func Unmarshal(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &BodyError{Msg: "request body is empty; a JSON body is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &BodyError{Msg: describeJSONError(err)}
	}
	if dec.More() {
		return &BodyError{Msg: "request body has data after the JSON value"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &BodyError{Msg: "request body has data after the JSON value"}
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("request body is not valid JSON: %s at byte %d", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("request body must be %s, not %s", jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "request body is not valid JSON: unexpected end of input"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return "request body: " + strings.TrimPrefix(msg, "json: ")
}

// jsonTypeName turns a Go kind into the JSON type a client sent or must send.
func jsonTypeName(kind string) string {
	switch kind {
	case "struct", "map":
		return "a JSON object"
	case "slice", "array":
		return "a JSON array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return kind
}

// WriteJSON writes v with status. HTML characters stay as they are
// (avatar URLs keep their '&'): responses are JSON, never HTML.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer putJSONBuffer(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own types get here; failing them is a bug.
		http.Error(w, `{"status":"error","error_msg":"internal error: encoding response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// jsonBuffers are reused for response bodies: growing a fresh buffer for
// every response was several allocations per request.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putJSONBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return // a large list's buffer is not kept
	}
	b.Reset()
	jsonBuffers.Put(b)
}

// Numbers turns the json.Numbers of a value decoded with UseNumber into
// int64 (or float64 when not integral), in place for slices and maps.
func Numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case []any:
		for i := range t {
			t[i] = Numbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = Numbers(t[k])
		}
	}
	return v
}

// StatusWriter remembers the status and size of an answer (for metrics and
// access logs); Unwrap lets handlers reach the connection's deadlines
// through it (http.ResponseController).
type StatusWriter struct {
	http.ResponseWriter
	Status int // 0 until the answer starts
	Bytes  int
}

func (w *StatusWriter) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += n
	return n, err
}

func (w *StatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
