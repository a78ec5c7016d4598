package store

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Op is a comparison of a Filter condition.
type Op string

// Operators. Contains is a case-sensitive substring match on strings; on
// array fields use Eq with one element ("the array holds it"), as MongoDB
// does. IsNull takes a bool: true matches null or absent.
const (
	OpEq       Op = "$eq"
	OpNe       Op = "$ne"
	OpLt       Op = "$lt"
	OpLte      Op = "$lte"
	OpGt       Op = "$gt"
	OpGte      Op = "$gte"
	OpIn       Op = "$in"
	OpNin      Op = "$nin"
	OpContains Op = "$contains"
	OpIsNull   Op = "$isnull"
)

// Filter is a driver-free query over profile documents: exactly one of
// And, Or or Cond is set, or none (matches everything).
type Filter struct {
	And  []Filter
	Or   []Filter
	Cond *Cond
}

// Cond compares one document field (a Field* constant or CustomFieldPath).
// Values are string, int64, float64, bool, time.Time; In and Nin take a
// []any of those; Eq and Ne may also take a []any (whole-array equality).
type Cond struct {
	Field string
	Op    Op
	Value any
}

// Limits on a filter's size, so that no request can make a huge query.
const (
	MaxFilterDepth = 8
	MaxFilterConds = 100
	MaxInValues    = 1000
)

// Where is a filter of one condition.
func Where(field string, op Op, value any) Filter {
	return Filter{Cond: &Cond{Field: field, Op: op, Value: value}}
}

// All is the conjunction of filters, flattening empty ones away.
func All(fs ...Filter) Filter {
	var kept []Filter
	for _, f := range fs {
		if !f.IsEmpty() {
			kept = append(kept, f)
		}
	}
	switch len(kept) {
	case 0:
		return Filter{}
	case 1:
		return kept[0]
	}
	return Filter{And: kept}
}

// IsEmpty reports a filter that matches everything.
func (f Filter) IsEmpty() bool { return f.Cond == nil && f.And == nil && f.Or == nil }

var customFieldName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

var filterableFields = map[string]bool{
	FieldID: true, FieldNickname: true, FieldAvatar: true, FieldGender: true, FieldCity: true,
	FieldProvince: true, FieldCountry: true, FieldLanguage: true, FieldOpenID: true,
	FieldUnionID: true, FieldGroups: true, FieldCreatedAt: true, FieldUpdatedAt: true,
	FieldUsername: true, FieldEmail: true, FieldPhone: true, FieldEmailVerified: true,
	FieldPhoneVerified: true, FieldBio: true, FieldLocation: true,
	FieldFollowersCount: true, FieldFollowingsCount: true,
}

// ValidField reports whether a filter or sort may name this field.
func ValidField(field string) bool {
	if filterableFields[field] {
		return true
	}
	name, ok := strings.CutPrefix(field, "custom.")
	return ok && customFieldName.MatchString(name)
}

// Validate checks the shape, fields, operators, value types and size.
func (f Filter) Validate() error {
	n := 0
	return f.validate(0, &n)
}

func (f Filter) validate(depth int, conds *int) error {
	if depth > MaxFilterDepth {
		return fmt.Errorf("filter nested deeper than %d", MaxFilterDepth)
	}
	set := 0
	if f.And != nil {
		set++
	}
	if f.Or != nil {
		set++
	}
	if f.Cond != nil {
		set++
	}
	if set > 1 {
		return errors.New("filter sets more than one of And, Or, Cond")
	}
	for _, sub := range append(append([]Filter(nil), f.And...), f.Or...) {
		if err := sub.validate(depth+1, conds); err != nil {
			return err
		}
	}
	if f.Or != nil && len(f.Or) == 0 {
		return errors.New("empty Or matches nothing")
	}
	if f.Cond == nil {
		return nil
	}
	*conds++
	if *conds > MaxFilterConds {
		return fmt.Errorf("filter has more than %d conditions", MaxFilterConds)
	}
	return f.Cond.validate()
}

func (c *Cond) validate() error {
	if !ValidField(c.Field) {
		return fmt.Errorf("filter on unknown field %q", c.Field)
	}
	switch c.Op {
	case OpEq, OpNe:
		if a, ok := c.Value.([]any); ok {
			return validList(a, false)
		}
		return validScalar(c.Value)
	case OpLt, OpLte, OpGt, OpGte:
		if _, ok := c.Value.(bool); ok {
			return fmt.Errorf("%s on a boolean", c.Op)
		}
		return validScalar(c.Value)
	case OpIn, OpNin:
		a, ok := c.Value.([]any)
		if !ok {
			return fmt.Errorf("%s needs a list, got %T", c.Op, c.Value)
		}
		return validList(a, true)
	case OpContains:
		if _, ok := c.Value.(string); !ok {
			return fmt.Errorf("$contains needs a string, got %T", c.Value)
		}
		return nil
	case OpIsNull:
		if _, ok := c.Value.(bool); !ok {
			return fmt.Errorf("$isnull needs a boolean, got %T", c.Value)
		}
		return nil
	}
	return fmt.Errorf("unknown operator %q", c.Op)
}

func validList(a []any, nonEmpty bool) error {
	if nonEmpty && len(a) == 0 {
		return errors.New("empty list")
	}
	if len(a) > MaxInValues {
		return fmt.Errorf("list longer than %d", MaxInValues)
	}
	for _, v := range a {
		if err := validScalar(v); err != nil {
			return err
		}
	}
	return nil
}

func validScalar(v any) error {
	switch v.(type) {
	case string, int64, float64, bool, time.Time:
		return nil
	}
	return fmt.Errorf("unsupported filter value type %T", v)
}

// BSON is the MongoDB query of a valid filter.
func (f Filter) BSON() bson.D {
	switch {
	case f.Cond != nil:
		return f.Cond.bson()
	case f.And != nil:
		return bson.D{{Key: "$and", Value: filtersBSON(f.And)}}
	case f.Or != nil:
		return bson.D{{Key: "$or", Value: filtersBSON(f.Or)}}
	}
	return bson.D{}
}

func filtersBSON(fs []Filter) bson.A {
	a := make(bson.A, len(fs))
	for i, f := range fs {
		a[i] = f.BSON()
	}
	return a
}

func (c *Cond) bson() bson.D {
	var expr any
	switch c.Op {
	case OpContains:
		expr = bson.D{{Key: "$regex", Value: literalRegex(c.Value.(string))}}
	case OpIsNull:
		if c.Value.(bool) {
			expr = bson.D{{Key: "$eq", Value: nil}}
		} else {
			expr = bson.D{{Key: "$ne", Value: nil}}
		}
	default:
		expr = bson.D{{Key: string(c.Op), Value: c.Value}}
	}
	return bson.D{{Key: c.Field, Value: expr}}
}

// literalRegex matches s literally. NUL is written as an escape because
// regex patterns travel as C strings in some encodings.
func literalRegex(s string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(s), "\x00", `\x00`)
}
