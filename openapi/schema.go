package openapi

import "maps"

// S is one JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) as the
// document holds it. Plain maps keep the builders short; encoding/json sorts
// their keys, so the document's bytes are stable.
type S = map[string]any

func str() S            { return S{"type": "string"} }
func integer() S        { return S{"type": "integer", "format": "int64"} }
func number() S         { return S{"type": "number"} }
func boolean() S        { return S{"type": "boolean"} }
func anyValue() S       { return S{} }
func ref(name string) S { return S{"$ref": "#/components/schemas/" + name} }
func arrayOf(items S) S { return S{"type": "array", "items": items} }

// enum is one of values, typed by the first (generators need the type).
func enum(values ...any) S {
	s := S{"enum": values}
	switch values[0].(type) {
	case string:
		s["type"] = "string"
	case int:
		s["type"] = "integer"
	case bool:
		s["type"] = "boolean"
	}
	return s
}

// id is a positive 64-bit id (users, groups, ledger entries).
func id() S { return S{"type": "integer", "format": "int64", "minimum": 1} }

// unix is a time in unix seconds.
func unix() S { return S{"type": "integer", "format": "int64", "description": "unix seconds"} }

// dateTime is the end-user dialect's "YYYY-MM-DD HH:MM:SS" (UTC) time.
func dateTime() S {
	return S{"type": "string", "pattern": `^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`, "description": "UTC, YYYY-MM-DD HH:MM:SS"}
}

// nullable is s that may also be null (3.1 spells it as a type list).
func nullable(s S) S {
	out := maps.Clone(s)
	if t, ok := s["type"].(string); ok {
		out["type"] = []string{t, "null"}
		return out
	}
	if _, isRef := s["$ref"]; isRef {
		return S{"anyOf": []S{s, {"type": "null"}}}
	}
	return out // untyped: null is already allowed
}

// with is s with extra keywords (description, limits, examples).
func with(s S, kv ...any) S {
	out := maps.Clone(s)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// object is a closed object: properties listed, the required ones named,
// nothing else allowed. Bodies the server refuses unknown fields of, and
// answers whose every field is listed, are closed.
func object(props S, required ...string) S {
	s := openObject(props, required...)
	s["additionalProperties"] = false
	return s
}

// openObject is an object that may carry fields beyond those listed.
func openObject(props S, required ...string) S {
	s := S{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// oneOf is exactly one of the schemas.
func oneOf(schemas ...S) S { return S{"oneOf": schemas} }
