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
	FieldFollowersCount: true, FieldFollowingsCount: true, FieldBanUntil: true,
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

// BSON is the MongoDB query of a valid filter, in the shape FerretDB can
// push down to SQL: FerretDB 1.24 (postgresql handler) turns top-level
// equality on scalars ({f: v} or {f: {$eq: v}}) and $ne into SQL and
// decodes every other document to filter it in Go; it looks inside no
// $and or $or. So a conjunction compiles to one flat document, one key per
// field, and single-branch or always-true $or clauses fold away. On
// MongoDB the shapes mean the same: top-level keys are ANDed, and the
// operators of one field's document are ANDed and each is evaluated on its
// own (on an array, different elements may satisfy different operators,
// exactly as in separate $and clauses; only $elemMatch would differ).
// Conditions that cannot share the flat document (a second $gt on one
// field, a second $or) stay in a trailing $and.
func (f Filter) BSON() bson.D {
	var c conjunction
	c.add(f)
	return c.bson()
}

// conjunction collects the ANDed parts of a filter.
type conjunction struct {
	fields []fieldOps // in order of first appearance
	or     bson.A     // the one $or kept at the top level, nil if none
	rest   bson.A     // clauses that would repeat a key of the flat document
}

// fieldOps are the operators on one field, each key once.
type fieldOps struct {
	field string
	ops   bson.D
}

func (c *conjunction) add(f Filter) {
	switch {
	case f.Cond != nil:
		c.addCond(f.Cond)
	case f.And != nil:
		for _, sub := range f.And {
			c.add(sub)
		}
	case f.Or != nil:
		c.addOr(f.Or)
	}
}

func (c *conjunction) addCond(cond *Cond) {
	op, v := cond.operator()
	for i := range c.fields {
		fo := &c.fields[i]
		if fo.field != cond.Field {
			continue
		}
		for _, e := range fo.ops {
			if e.Key == op {
				// {f: {$gt: 1, $gt: 2}} is not a document: a clause of its own.
				c.rest = append(c.rest, bson.D{{Key: cond.Field, Value: bson.D{{Key: op, Value: v}}}})
				return
			}
		}
		fo.ops = append(fo.ops, bson.E{Key: op, Value: v})
		return
	}
	c.fields = append(c.fields, fieldOps{field: cond.Field, ops: bson.D{{Key: op, Value: v}}})
}

func (c *conjunction) addOr(branches []Filter) {
	if len(branches) == 1 {
		c.add(branches[0])
		return
	}
	or := make(bson.A, len(branches))
	for i, b := range branches {
		d := b.BSON()
		if len(d) == 0 {
			return // a branch that matches everything: the $or always holds
		}
		or[i] = d
	}
	if c.or == nil {
		c.or = or
		return
	}
	c.rest = append(c.rest, bson.D{{Key: "$or", Value: or}})
}

func (c *conjunction) bson() bson.D {
	d := make(bson.D, 0, len(c.fields)+2)
	for _, fo := range c.fields {
		d = append(d, bson.E{Key: fo.field, Value: fo.value()})
	}
	if c.or != nil {
		d = append(d, bson.E{Key: "$or", Value: c.or})
	}
	if c.rest != nil {
		d = append(d, bson.E{Key: "$and", Value: c.rest})
	}
	return d
}

// value is {f: v} for a lone equality with a scalar (the form MongoDB
// documents as shorthand for $eq), else the operator document. Null and
// whole-array equality keep $eq: they read unambiguously, and FerretDB
// pushes neither down anyway.
func (fo fieldOps) value() any {
	if len(fo.ops) == 1 && fo.ops[0].Key == string(OpEq) && isScalar(fo.ops[0].Value) {
		return fo.ops[0].Value
	}
	return fo.ops
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, int64, float64, bool, time.Time:
		return true
	}
	return false
}

// operator is the MongoDB operator and operand of a valid condition.
func (c *Cond) operator() (string, any) {
	switch c.Op {
	case OpContains:
		return "$regex", literalRegex(c.Value.(string))
	case OpIsNull:
		// $eq null matches null and absent; $ne null neither.
		if c.Value.(bool) {
			return string(OpEq), nil
		}
		return string(OpNe), nil
	}
	return string(c.Op), c.Value
}

// literalRegex matches s literally. NUL is written as an escape because
// regex patterns travel as C strings in some encodings.
func literalRegex(s string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(s), "\x00", `\x00`)
}
