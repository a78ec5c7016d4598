package minapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"userve.dev/userve/server/store"
)

// Largest where parameter accepted, in bytes.
const maxWhereLength = 16 << 10

// operators by field kind; $range is expanded into $gte and $lte.
var kindOps = map[kind][]string{
	kindString:   {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$contains", "$in", "$nin", "$isnull"},
	kindInteger:  {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$range", "$isnull"},
	kindNumber:   {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$range", "$isnull"},
	kindBoolean:  {"$eq", "$ne", "$isnull"},
	kindUnixTime: {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$range", "$isnull"},
	kindDate:     {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$range", "$isnull"},
	kindIntArray: {"$eq", "$ne", "$contains", "$in", "$nin", "$isnull"},
	kindArray:    {"$eq", "$ne", "$contains", "$in", "$nin", "$isnull"},
	kindObject:   {"$isnull"},
}

var allOps = map[string]bool{"$eq": true, "$ne": true, "$lt": true, "$lte": true, "$gt": true,
	"$gte": true, "$contains": true, "$in": true, "$nin": true, "$isnull": true, "$range": true}

// WhereError is a bad where expression.
type WhereError struct{ Msg string }

func (e *WhereError) Error() string { return "where: " + e.Msg }

func whereErr(format string, args ...any) error {
	return &WhereError{Msg: fmt.Sprintf(format, args...)}
}

// ParseWhere reads a v2.2 where expression: a JSON object of
// field: {operator: value, ...} (or field: value for $eq), "$and" and
// "$or" taking lists of such objects. Several keys in one object must all
// hold. The result is a valid store filter.
func ParseWhere(raw string, schema Schema) (store.Filter, error) {
	if len(raw) > maxWhereLength {
		return store.Filter{}, whereErr("longer than %d bytes", maxWhereLength)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return store.Filter{}, whereErr("not valid JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return store.Filter{}, whereErr("data after the JSON object")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return store.Filter{}, whereErr("must be a JSON object, not %s", jsonTypeOf(v))
	}
	p := &whereParser{schema: schema}
	f, err := p.object(obj, 1)
	if err != nil {
		return store.Filter{}, err
	}
	// The store checks the same limits; a failure here is ours to report
	// as the client's (too big), never a 500.
	if err := f.Validate(); err != nil {
		return store.Filter{}, whereErr("%v", err)
	}
	return f, nil
}

type whereParser struct {
	schema Schema
	conds  int
}

func (p *whereParser) object(obj map[string]any, depth int) (store.Filter, error) {
	if depth > store.MaxFilterDepth {
		return store.Filter{}, whereErr("nested deeper than %d levels", store.MaxFilterDepth)
	}
	var parts []store.Filter
	for _, key := range sortedKeys(obj) {
		val := obj[key]
		switch key {
		case "$and", "$or":
			list, ok := val.([]any)
			if !ok || len(list) == 0 {
				return store.Filter{}, whereErr("%s takes a non-empty list of objects", key)
			}
			subs := make([]store.Filter, 0, len(list))
			for _, item := range list {
				m, ok := item.(map[string]any)
				if !ok {
					return store.Filter{}, whereErr("%s takes a list of objects, found %s", key, jsonTypeOf(item))
				}
				sub, err := p.object(m, depth+1)
				if err != nil {
					return store.Filter{}, err
				}
				subs = append(subs, sub)
			}
			if key == "$and" {
				parts = append(parts, store.All(subs...))
				continue
			}
			// An empty sub-object inside $or matches everything; so does the $or.
			orMatchesAll := false
			for _, s := range subs {
				orMatchesAll = orMatchesAll || s.IsEmpty()
			}
			if !orMatchesAll {
				parts = append(parts, store.Filter{Or: subs})
			}
		default:
			if strings.HasPrefix(key, "$") {
				return store.Filter{}, whereErr("unsupported operator %q at the top of an object; use $and or $or, or put it under a field", key)
			}
			if key == bannedField {
				cond, err := p.banned(val)
				if err != nil {
					return store.Filter{}, err
				}
				parts = append(parts, cond)
				continue
			}
			f, ok := p.schema.lookup(key)
			if !ok {
				return store.Filter{}, whereErr("unknown field %q", key)
			}
			cond, err := p.field(f, val)
			if err != nil {
				return store.Filter{}, err
			}
			parts = append(parts, cond)
		}
	}
	return store.All(parts...), nil
}

// field reads {"$op": value, ...} or a bare value ($eq) for one field.
func (p *whereParser) field(f field, val any) (store.Filter, error) {
	ops, ok := val.(map[string]any)
	if !ok {
		ops = map[string]any{"$eq": val}
	}
	if len(ops) == 0 {
		return store.Filter{}, whereErr("field %q has no operator", f.name)
	}
	var parts []store.Filter
	for _, op := range sortedKeys(ops) {
		if !allOps[op] {
			return store.Filter{}, whereErr("unsupported operator %q on field %q", op, f.name)
		}
		if !opAllowed(f.kind, op) {
			return store.Filter{}, whereErr("operator %s is not supported on %s field %q", op, f.kind, f.name)
		}
		p.conds++
		if p.conds > store.MaxFilterConds {
			return store.Filter{}, whereErr("more than %d conditions", store.MaxFilterConds)
		}
		c, err := condition(f, op, ops[op])
		if err != nil {
			return store.Filter{}, err
		}
		parts = append(parts, c)
	}
	return store.All(parts...), nil
}

// bannedField is the computed field "banned now" (a ban whose end is
// later than the schema's now; store.Ban).
const bannedField = "_banned"

// banned reads a condition on _banned: true, false, or {"$eq"|"$ne": bool}.
func (p *whereParser) banned(val any) (store.Filter, error) {
	ops, ok := val.(map[string]any)
	if !ok {
		ops = map[string]any{"$eq": val}
	}
	if len(ops) == 0 {
		return store.Filter{}, whereErr("field %q has no operator", bannedField)
	}
	now := p.schema.now()
	var parts []store.Filter
	for _, op := range sortedKeys(ops) {
		if op != "$eq" && op != "$ne" {
			return store.Filter{}, whereErr("operator %s is not supported on %q; use $eq or $ne", op, bannedField)
		}
		want, ok := ops[op].(bool)
		if !ok {
			return store.Filter{}, whereErr("%s on %q takes true or false, not %s", op, bannedField, jsonTypeOf(ops[op]))
		}
		p.conds += 2
		if p.conds > store.MaxFilterConds {
			return store.Filter{}, whereErr("more than %d conditions", store.MaxFilterConds)
		}
		if op == "$ne" {
			want = !want
		}
		if want {
			parts = append(parts, store.Where(store.FieldBanUntil, store.OpGt, now))
		} else {
			parts = append(parts, store.Filter{Or: []store.Filter{
				store.Where(store.FieldBanUntil, store.OpIsNull, true),
				store.Where(store.FieldBanUntil, store.OpLte, now),
			}})
		}
	}
	return store.All(parts...), nil
}

func opAllowed(k kind, op string) bool {
	for _, o := range kindOps[k] {
		if o == op {
			return true
		}
	}
	return false
}

func condition(f field, op string, v any) (store.Filter, error) {
	switch op {
	case "$isnull":
		b, ok := v.(bool)
		if !ok {
			return store.Filter{}, whereErr("%s on %q takes true or false", op, f.name)
		}
		return store.Where(f.path, store.OpIsNull, b), nil
	case "$in", "$nin":
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return store.Filter{}, whereErr("%s on %q takes a non-empty list", op, f.name)
		}
		vals, err := elementValues(f, op, list)
		if err != nil {
			return store.Filter{}, err
		}
		return store.Where(f.path, store.Op(op), vals), nil
	case "$range":
		list, ok := v.([]any)
		if !ok || len(list) != 2 {
			return store.Filter{}, whereErr("$range on %q takes [low, high] (both inclusive)", f.name)
		}
		lo, err := scalarValue(f, op, list[0])
		if err != nil {
			return store.Filter{}, err
		}
		hi, err := scalarValue(f, op, list[1])
		if err != nil {
			return store.Filter{}, err
		}
		return store.All(store.Where(f.path, store.OpGte, lo), store.Where(f.path, store.OpLte, hi)), nil
	case "$contains":
		if f.kind == kindString {
			s, ok := v.(string)
			if !ok {
				return store.Filter{}, whereErr("$contains on %q takes a string, not %s", f.name, jsonTypeOf(v))
			}
			return store.Where(f.path, store.OpContains, s), nil
		}
		// On arrays: the array holds this element.
		x, err := elementValue(f, op, v)
		if err != nil {
			return store.Filter{}, err
		}
		return store.Where(f.path, store.OpEq, x), nil
	}
	// $eq $ne $lt $lte $gt $gte
	if f.kind == kindIntArray || f.kind == kindArray {
		if list, ok := v.([]any); ok {
			vals, err := elementValues(f, op, list)
			if err != nil {
				return store.Filter{}, err
			}
			return store.Where(f.path, store.Op(op), vals), nil
		}
		x, err := elementValue(f, op, v)
		if err != nil {
			return store.Filter{}, err
		}
		return store.Where(f.path, store.Op(op), x), nil
	}
	x, err := scalarValue(f, op, v)
	if err != nil {
		return store.Filter{}, err
	}
	return store.Where(f.path, store.Op(op), x), nil
}

// scalarValue converts an operand for a scalar field.
func scalarValue(f field, op string, v any) (any, error) {
	bad := func(detail string) error {
		return whereErr("%s on %q takes %s%s, not %s", op, f.name, articled(f.kind), detail, jsonTypeOf(v))
	}
	switch f.kind {
	case kindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kindInteger:
		if n, ok := v.(json.Number); ok {
			i, err := parseInteger(n)
			if err != nil {
				return nil, whereErr("%s on %q: %v", op, f.name, err)
			}
			return i, nil
		}
	case kindNumber:
		if n, ok := v.(json.Number); ok {
			x, err := parseFloat(n)
			if err != nil {
				return nil, whereErr("%s on %q: %v", op, f.name, err)
			}
			return x, nil
		}
	case kindBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case kindUnixTime:
		if n, ok := v.(json.Number); ok {
			i, err := parseInteger(n)
			if err == nil {
				var t any
				if t, err = unixTime(i); err == nil {
					return t, nil
				}
			}
			return nil, whereErr("%s on %q: %v", op, f.name, err)
		}
	case kindDate:
		if s, ok := v.(string); ok {
			t, err := parseDate(s)
			if err != nil {
				return nil, whereErr("%s on %q: %v", op, f.name, err)
			}
			return t, nil
		}
	}
	return nil, bad("")
}

// elementValue converts one element operand: for arrays an array element,
// otherwise a scalar of the field.
func elementValue(f field, op string, v any) (any, error) {
	switch f.kind {
	case kindIntArray:
		if n, ok := v.(json.Number); ok {
			if i, err := parseInteger(n); err == nil {
				return i, nil
			}
		}
		return nil, whereErr("%s on %q takes group ids (integers), not %s", op, f.name, jsonTypeOf(v))
	case kindArray:
		switch x := v.(type) {
		case string, bool:
			return x, nil
		case json.Number:
			if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return i, nil
			}
			fl, err := parseFloat(x)
			if err != nil {
				return nil, whereErr("%s on %q: %v", op, f.name, err)
			}
			return fl, nil
		}
		return nil, whereErr("%s on %q takes strings, numbers or booleans as elements, not %s", op, f.name, jsonTypeOf(v))
	}
	return scalarValue(f, op, v)
}

// ParseListV22 reads the v2.2 list parameters: where, order_by, limit,
// offset and return_total_count.
func ParseListV22(q url.Values, lim Limits, schema Schema) (ListQuery, error) {
	lq := ListQuery{}
	for _, name := range sortedKeys(q) {
		values := q[name]
		if len(values) != 1 {
			return lq, paramErr(name, "given %d times; give it once", len(values))
		}
		v := values[0]
		switch name {
		case "where":
			if v == "" {
				return lq, paramErr(name, "empty value")
			}
			f, err := ParseWhere(v, schema)
			if err != nil {
				var we *WhereError
				if errors.As(err, &we) {
					return lq, paramErr(name, "%s", we.Msg)
				}
				return lq, paramErr(name, "%v", err)
			}
			lq.Filter = f
		case "order_by":
			key, err := parseSort(v, schema)
			if err != nil {
				return lq, paramErr(name, "%v", err)
			}
			lq.Sort = []store.SortKey{key}
		case "return_total_count":
			switch v {
			case "1":
				lq.TotalCount = true
			case "0":
			default:
				return lq, paramErr(name, "%q must be 0 or 1", v)
			}
		case "limit", "offset":
			if v == "" {
				return lq, paramErr(name, "empty value")
			}
			if err := parsePaging(&lq, name, v, lim); err != nil {
				return lq, err
			}
		default:
			return lq, paramErr(name, "unknown parameter; v2.2 accepts where, order_by, limit, offset and return_total_count")
		}
	}
	if lq.Limit == 0 {
		lq.Limit = lim.Default
	}
	return lq, nil
}

// parseSort reads one sortable field, "-" for descending.
func parseSort(v string, schema Schema) (store.SortKey, error) {
	name, desc := strings.CutPrefix(v, "-")
	if name == "" {
		return store.SortKey{}, errors.New("empty field name")
	}
	if strings.Contains(name, ",") {
		return store.SortKey{}, fmt.Errorf("%q: sorting by one field only", v)
	}
	f, ok := schema.lookup(name)
	if !ok {
		return store.SortKey{}, fmt.Errorf("%q: unknown field", name)
	}
	if !f.sortable {
		return store.SortKey{}, fmt.Errorf("%q: sorting by this field is not supported; sortable: user_id, created_at, updated_at and custom string, integer, number, boolean and date fields", name)
	}
	return store.SortKey{Field: f.path, Desc: desc}, nil
}

// elementValues converts a JSON list of elements for op on f, bounded by
// store.MaxInValues.
func elementValues(f field, op string, list []any) ([]any, error) {
	if len(list) > store.MaxInValues {
		return nil, whereErr("%s on %q takes at most %d values", op, f.name, store.MaxInValues)
	}
	vals := make([]any, len(list))
	for i, e := range list {
		x, err := elementValue(f, op, e)
		if err != nil {
			return nil, err
		}
		vals[i] = x
	}
	return vals, nil
}
