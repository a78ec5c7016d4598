package minapp

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/store"
)

// kind is what a field holds, as far as filters and validation care.
type kind int

const (
	kindString   kind = iota
	kindInteger       // int64
	kindNumber        // float64 (integers accepted)
	kindBoolean       //
	kindUnixTime      // built-in times: unix seconds in and out, BSON dates inside
	kindDate          // custom dates: RFC 3339 in and out, BSON dates inside
	kindIntArray      // user_group: ids
	kindArray         // custom arrays: any JSON values
	kindObject        // custom objects
)

func (k kind) String() string {
	return [...]string{"string", "integer", "number", "boolean", "unix timestamp (integer seconds)",
		"date (RFC 3339 string)", "array of integers", "array", "object"}[k]
}

// field is a profile field as the management dialect names it.
type field struct {
	name     string // management name, e.g. "_email", "age"
	path     string // store document path, e.g. "email", "custom.age"
	kind     kind
	sortable bool
	custom   *v1alpha1.CustomField
}

// builtinFields are the management profile's own fields and where they
// live in the store.
var builtinFields = map[string]field{
	"user_id":         {name: "user_id", path: store.FieldID, kind: kindInteger, sortable: true},
	"id":              {name: "id", path: store.FieldID, kind: kindInteger, sortable: true},
	"nickname":        {name: "nickname", path: store.FieldNickname, kind: kindString},
	"avatar":          {name: "avatar", path: store.FieldAvatar, kind: kindString},
	"gender":          {name: "gender", path: store.FieldGender, kind: kindInteger},
	"city":            {name: "city", path: store.FieldCity, kind: kindString},
	"province":        {name: "province", path: store.FieldProvince, kind: kindString},
	"country":         {name: "country", path: store.FieldCountry, kind: kindString},
	"language":        {name: "language", path: store.FieldLanguage, kind: kindString},
	"openid":          {name: "openid", path: store.FieldOpenID, kind: kindString},
	"unionid":         {name: "unionid", path: store.FieldUnionID, kind: kindString},
	"user_group":      {name: "user_group", path: store.FieldGroups, kind: kindIntArray},
	"created_at":      {name: "created_at", path: store.FieldCreatedAt, kind: kindUnixTime, sortable: true},
	"updated_at":      {name: "updated_at", path: store.FieldUpdatedAt, kind: kindUnixTime, sortable: true},
	"_username":       {name: "_username", path: store.FieldUsername, kind: kindString},
	"_email":          {name: "_email", path: store.FieldEmail, kind: kindString},
	"_phone":          {name: "_phone", path: store.FieldPhone, kind: kindString},
	"_email_verified": {name: "_email_verified", path: store.FieldEmailVerified, kind: kindBoolean},
	"_phone_verified": {name: "_phone_verified", path: store.FieldPhoneVerified, kind: kindBoolean},
}

// Schema is the tenant's custom profile fields.
type Schema struct {
	fields map[string]field
	names  []string // declared order
	// clock is the now of computed fields (_banned in where); nil:
	// time.Now.
	clock func() time.Time
}

// WithClock is s whose computed fields are judged at clock's now.
func (s Schema) WithClock(clock func() time.Time) Schema {
	s.clock = clock
	return s
}

func (s Schema) now() time.Time {
	if s.clock == nil {
		return time.Now()
	}
	return s.clock()
}

// NewSchema indexes the declared custom fields.
func NewSchema(fs []v1alpha1.CustomField) Schema {
	s := Schema{fields: map[string]field{}}
	for i := range fs {
		cf := fs[i]
		k := map[v1alpha1.CustomFieldType]kind{
			v1alpha1.FieldString: kindString, v1alpha1.FieldInteger: kindInteger,
			v1alpha1.FieldNumber: kindNumber, v1alpha1.FieldBoolean: kindBoolean,
			v1alpha1.FieldDate: kindDate, v1alpha1.FieldArray: kindArray, v1alpha1.FieldObject: kindObject,
		}[cf.Type]
		s.fields[cf.Name] = field{name: cf.Name, path: store.CustomFieldPath(cf.Name), kind: k,
			sortable: k != kindArray && k != kindObject, custom: &cf}
		s.names = append(s.names, cf.Name)
	}
	return s
}

// lookup finds a built-in or custom field by its management name.
func (s Schema) lookup(name string) (field, bool) {
	if f, ok := builtinFields[name]; ok {
		return f, true
	}
	f, ok := s.fields[name]
	return f, ok
}

func isBuiltin(name string) bool {
	_, ok := builtinFields[name]
	return ok
}

// ---- JSON value coercion --------------------------------------------------

// Limits on custom values, so that stored documents stay well-formed BSON.
const (
	maxValueDepth = 16
	maxKeyLength  = 256
)

// customValue checks a decoded JSON value (json.Number for numbers) against
// a custom field's declaration and returns what the store keeps.
func customValue(f field, v any) (any, error) {
	cf := f.custom
	switch f.kind {
	case kindString:
		s, ok := v.(string)
		if !ok {
			return nil, typeError(f, v)
		}
		if cf.MaxLength != nil && utf8.RuneCountInString(s) > int(*cf.MaxLength) {
			return nil, fmt.Errorf("field %s is longer than its maxLength %d", f.name, *cf.MaxLength)
		}
		return s, nil
	case kindInteger:
		n, ok := v.(json.Number)
		if !ok {
			return nil, typeError(f, v)
		}
		i, err := parseInteger(n)
		if err != nil {
			return nil, fmt.Errorf("field %s must be an integer: %v", f.name, err)
		}
		return i, nil
	case kindNumber:
		n, ok := v.(json.Number)
		if !ok {
			return nil, typeError(f, v)
		}
		x, err := parseFloat(n)
		if err != nil {
			return nil, fmt.Errorf("field %s must be a number: %v", f.name, err)
		}
		return x, nil
	case kindBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, typeError(f, v)
		}
		return b, nil
	case kindDate:
		s, ok := v.(string)
		if !ok {
			return nil, typeError(f, v)
		}
		t, err := parseDate(s)
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", f.name, err)
		}
		return t, nil
	case kindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, typeError(f, v)
		}
		if cf.MaxLength != nil && len(a) > int(*cf.MaxLength) {
			return nil, fmt.Errorf("field %s has more than its maxLength %d items", f.name, *cf.MaxLength)
		}
		out, err := plainJSON(a, 1)
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", f.name, err)
		}
		return out, nil
	case kindObject:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, typeError(f, v)
		}
		out, err := plainJSON(m, 1)
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", f.name, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("field %s has an unsupported type", f.name)
}

func typeError(f field, v any) error {
	return fmt.Errorf("field %s must be %s, not %s", f.name, articled(f.kind), jsonTypeOf(v))
}

func articled(k kind) string {
	switch k {
	case kindInteger, kindArray, kindIntArray, kindObject:
		return "an " + k.String()
	}
	return "a " + k.String()
}

func jsonTypeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64, int64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// plainJSON converts nested JSON for storage: numbers become int64 or
// float64, object keys are checked (MongoDB reserves '$' prefixes and
// '.'), depth is bounded.
func plainJSON(v any, depth int) (any, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("value nested deeper than %d levels", maxValueDepth)
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		return parseFloat(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := plainJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			switch {
			case k == "":
				return nil, fmt.Errorf("object keys must not be empty")
			case strings.HasPrefix(k, "$"):
				return nil, fmt.Errorf("object key %q must not start with '$'", k)
			case strings.ContainsAny(k, ".\x00"):
				return nil, fmt.Errorf("object key %q must not contain '.' or NUL", k)
			case len(k) > maxKeyLength:
				return nil, fmt.Errorf("object key longer than %d bytes", maxKeyLength)
			}
			c, err := plainJSON(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case string, bool, nil:
		return x, nil
	}
	return nil, fmt.Errorf("unsupported JSON value %T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseInteger accepts integral JSON numbers within int64, also written
// as 1e3 or 2.0.
func parseInteger(n json.Number) (int64, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s is not a number within range", n)
	}
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, fmt.Errorf("%s is not an integer within 64 bits", n)
	}
	return int64(f), nil
}

func parseFloat(n json.Number) (float64, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s is not a finite 64-bit number", n)
	}
	return f, nil
}

// parseDate reads an RFC 3339 timestamp; MongoDB keeps milliseconds.
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date (e.g. 2024-05-01T12:00:00Z)", s)
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

// Unix seconds accepted for created_at/updated_at: up to year 9999.
const maxUnixSeconds = 253402300799

func unixTime(i int64) (time.Time, error) {
	if i < 0 || i > maxUnixSeconds {
		return time.Time{}, fmt.Errorf("%d is not a unix timestamp between 0 and %d", i, maxUnixSeconds)
	}
	return time.Unix(i, 0).UTC(), nil
}

// ---- output ---------------------------------------------------------------

// profileJSON is the management profile object: built-in fields, every
// declared custom field at the top level (null when unset), and the
// end-user identity fields when set. The password hash never leaves.
func (s Schema) profileJSON(p *store.Profile) map[string]any {
	out := map[string]any{
		"user_id":    p.ID,
		"nickname":   p.Nickname,
		"avatar":     p.Avatar,
		"gender":     p.Gender,
		"city":       p.City,
		"province":   p.Province,
		"country":    p.Country,
		"language":   p.Language,
		"openid":     nullIfEmpty(p.OpenID),
		"unionid":    nullIfEmpty(p.UnionID),
		"user_group": p.Groups,
		"created_at": p.Created.Unix(),
		"updated_at": p.Updated.Unix(),
	}
	for name, v := range s.CustomJSON(p) {
		out[name] = v
	}
	if p.Username != "" {
		out["_username"] = p.Username
	}
	if p.Email != "" {
		out["_email"] = p.Email
		out["_email_verified"] = p.EmailVerified
	}
	if p.Phone != "" {
		out["_phone"] = p.Phone
		out["_phone_verified"] = p.PhoneVerified
	}
	return out
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
