package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/test/mongofixture"
)

func ops(kv ...any) bson.D {
	d := bson.D{}
	for i := 0; i < len(kv); i += 2 {
		d = append(d, bson.E{Key: kv[i].(string), Value: kv[i+1]})
	}
	return d
}

func or(fs ...Filter) Filter { return Filter{Or: fs} }

func TestFilterBSONShape(t *testing.T) {
	t2017 := time.Unix(1483228800, 0).UTC()
	cases := []struct {
		name string
		f    Filter
		want bson.D
	}{
		{"empty", Filter{}, bson.D{}},
		{"empty and", Filter{And: []Filter{}}, bson.D{}},
		{"scalar equality is shorthand",
			Where(FieldGender, OpEq, int64(1)),
			ops(FieldGender, int64(1))},
		{"equality on an array field is shorthand too (the array holds it)",
			Where(FieldGroups, OpEq, int64(3)),
			ops(FieldGroups, int64(3))},
		{"whole-array equality keeps $eq",
			Where(FieldGroups, OpEq, []any{int64(1), int64(2)}),
			ops(FieldGroups, ops("$eq", []any{int64(1), int64(2)}))},
		{"isnull true keeps $eq null (null or absent)",
			Where(CustomFieldPath("age"), OpIsNull, true),
			ops("custom.age", ops("$eq", nil))},
		{"isnull false is $ne null",
			Where(CustomFieldPath("age"), OpIsNull, false),
			ops("custom.age", ops("$ne", nil))},
		{"contains is a literal regex",
			Where(FieldNickname, OpContains, "a.b"),
			ops(FieldNickname, ops("$regex", `a\.b`))},
		{"the v2.0 seed list is one flat document",
			All(Where(FieldNickname, OpContains, "Tom"), Where(FieldGender, OpEq, int64(1)), Where(FieldCreatedAt, OpGt, t2017)),
			ops(FieldNickname, ops("$regex", "Tom"), FieldGender, int64(1), FieldCreatedAt, ops("$gt", t2017))},
		{"the v2.2 seed where is one flat document",
			All(Where(FieldGender, OpEq, int64(2)), Where(CustomFieldPath("level"), OpGte, int64(3))),
			ops(FieldGender, int64(2), "custom.level", ops("$gte", int64(3)))},
		{"nested ands flatten",
			Filter{And: []Filter{{And: []Filter{Where(FieldCity, OpEq, "x"), {}}}, Where(FieldBio, OpNe, "y")}},
			ops(FieldCity, "x", FieldBio, ops("$ne", "y"))},
		{"a range on one field merges into one operator document",
			All(Where(FieldCreatedAt, OpGte, t2017), Where(FieldCreatedAt, OpLte, t2017.Add(time.Hour))),
			ops(FieldCreatedAt, ops("$gte", t2017, "$lte", t2017.Add(time.Hour)))},
		{"equality merged with another operator becomes $eq",
			All(Where(FieldGender, OpEq, int64(1)), Where(FieldGender, OpNin, []any{int64(2)})),
			ops(FieldGender, ops("$eq", int64(1), "$nin", []any{int64(2)}))},
		{"a repeated operator on one field stays in $and",
			All(Where(FieldCreatedAt, OpGt, t2017), Where(FieldGender, OpEq, int64(0)), Where(FieldCreatedAt, OpGt, t2017.Add(time.Hour)), Where(FieldGender, OpEq, int64(1))),
			ops(FieldCreatedAt, ops("$gt", t2017), FieldGender, int64(0),
				"$and", bson.A{ops(FieldCreatedAt, ops("$gt", t2017.Add(time.Hour))), ops(FieldGender, ops("$eq", int64(1)))})},
		{"an $or sits next to the fields",
			All(Where(FieldGender, OpEq, int64(1)), or(Where(FieldCity, OpEq, "a"), Where(FieldCity, OpEq, "b"))),
			ops(FieldGender, int64(1), "$or", bson.A{ops(FieldCity, "a"), ops(FieldCity, "b")})},
		{"or branches are compiled flat too",
			or(All(Where(FieldCity, OpEq, "a"), Where(FieldGender, OpEq, int64(1))), Where(FieldCity, OpEq, "b")),
			ops("$or", bson.A{ops(FieldCity, "a", FieldGender, int64(1)), ops(FieldCity, "b")})},
		{"a second $or stays in $and",
			All(or(Where(FieldCity, OpEq, "a"), Where(FieldCity, OpEq, "b")), or(Where(FieldBio, OpEq, "c"), Where(FieldBio, OpEq, "d"))),
			ops("$or", bson.A{ops(FieldCity, "a"), ops(FieldCity, "b")},
				"$and", bson.A{ops("$or", bson.A{ops(FieldBio, "c"), ops(FieldBio, "d")})})},
		{"a one-branch $or is its branch",
			All(Where(FieldGender, OpEq, int64(1)), or(All(Where(FieldCity, OpEq, "a"), Where(FieldGender, OpNe, int64(2))))),
			ops(FieldGender, ops("$eq", int64(1), "$ne", int64(2)), FieldCity, "a")},
		{"an $or with an always-true branch always holds",
			All(Where(FieldGender, OpEq, int64(1)), or(Filter{}, Where(FieldCity, OpEq, "a"))),
			ops(FieldGender, int64(1))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.Validate(); err != nil {
				t.Fatalf("the case's filter is invalid: %v", err)
			}
			if got := tc.f.BSON(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %s\nwant %s", extJSON(t, got), extJSON(t, tc.want))
			}
		})
	}
}

func extJSON(t *testing.T, d bson.D) string {
	b, err := bson.MarshalExtJSON(d, true, false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nestedBSON is the filter as it reads: every conjunction an $and, every
// disjunction an $or, every condition {f: {op: v}}. The flat BSON must
// select exactly what it selects.
func nestedBSON(f Filter) bson.D {
	list := func(fs []Filter) bson.A {
		a := bson.A{}
		for _, sub := range fs {
			a = append(a, nestedBSON(sub))
		}
		return a
	}
	switch {
	case f.Cond != nil:
		op, v := f.Cond.operator()
		return bson.D{{Key: f.Cond.Field, Value: bson.D{{Key: op, Value: v}}}}
	case len(f.And) > 0:
		return bson.D{{Key: "$and", Value: list(f.And)}}
	case f.Or != nil:
		return bson.D{{Key: "$or", Value: list(f.Or)}}
	}
	return bson.D{}
}

// TestFlatFilterSelectsWhatTheNestedOneDoes runs both shapes against the
// store on documents made to tell them apart: arrays, nulls, absent fields,
// mixed number types and custom sub-documents.
func TestFlatFilterSelectsWhatTheNestedOneDoes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	col := mongofixture.NewDatabase(t).Collection(ColProfiles)
	t0 := time.Unix(1_600_000_000, 0).UTC()
	docs := []any{
		bson.D{{Key: "_id", Value: int64(1)}, {Key: FieldGender, Value: int64(1)}, {Key: FieldNickname, Value: "Tommy"}, {Key: FieldGroups, Value: bson.A{int64(1), int64(10)}},
			{Key: FieldCreatedAt, Value: t0}, {Key: "custom", Value: bson.D{{Key: "level", Value: int64(5)}, {Key: "tags", Value: bson.A{"x", "y"}}}}},
		bson.D{{Key: "_id", Value: int64(2)}, {Key: FieldGender, Value: int64(2)}, {Key: FieldNickname, Value: "tom"}, {Key: FieldGroups, Value: bson.A{int64(4)}},
			{Key: FieldCreatedAt, Value: t0.Add(time.Hour)}, {Key: "custom", Value: bson.D{{Key: "level", Value: 3.0}, {Key: "tags", Value: nil}}}},
		bson.D{{Key: "_id", Value: int64(3)}, {Key: FieldGender, Value: 1.0}, {Key: FieldNickname, Value: "Tom"}, {Key: FieldGroups, Value: bson.A{}},
			{Key: FieldCreatedAt, Value: t0.Add(2 * time.Hour)}},
		bson.D{{Key: "_id", Value: int64(4)}, {Key: FieldGender, Value: nil}, {Key: FieldNickname, Value: "Anna"}, {Key: FieldGroups, Value: bson.A{int64(1)}},
			{Key: "custom", Value: bson.D{{Key: "level", Value: int64(1)}, {Key: "tags", Value: bson.A{"y"}}}}},
		bson.D{{Key: "_id", Value: int64(5)}, {Key: FieldNickname, Value: "Tomas"}, {Key: FieldCreatedAt, Value: t0.Add(3 * time.Hour)},
			{Key: "custom", Value: bson.D{{Key: "level", Value: "3"}}}},
	}
	if _, err := col.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	level := CustomFieldPath("level")
	tags := CustomFieldPath("tags")
	cases := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"equality matches int and double alike", Where(FieldGender, OpEq, int64(1)), []int64{1, 3}},
		{"v2.0 seed shape", All(Where(FieldNickname, OpContains, "Tom"), Where(FieldGender, OpEq, int64(1)), Where(FieldCreatedAt, OpGt, t0)), []int64{3}},
		{"v2.2 seed shape", All(Where(FieldGender, OpEq, int64(2)), Where(level, OpGte, int64(3))), []int64{2}},
		{"array holds", All(Where(FieldGroups, OpEq, int64(1)), Where(FieldNickname, OpContains, "T")), []int64{1}},
		// Different elements may satisfy the two bounds, in either shape.
		{"array range merged", All(Where(FieldGroups, OpGt, int64(5)), Where(FieldGroups, OpLt, int64(2))), []int64{1}},
		{"array equality merged with $ne", All(Where(FieldGroups, OpEq, int64(1)), Where(FieldGroups, OpNe, int64(10))), []int64{4}},
		{"whole-array equality", Where(FieldGroups, OpEq, []any{int64(4)}), []int64{2}},
		{"custom array holds, with a range on another custom field", All(Where(tags, OpEq, "y"), Where(level, OpGte, int64(2))), []int64{1}},
		{"isnull true with equality", All(Where(FieldGender, OpIsNull, true), Where(FieldNickname, OpContains, "a")), []int64{4, 5}},
		{"isnull false merged with $ne", All(Where(tags, OpIsNull, false), Where(tags, OpNe, "x")), []int64{4}},
		{"null custom value is null", All(Where(tags, OpIsNull, true), Where(level, OpIsNull, false)), []int64{2, 5}},
		{"$ne matches absent and null", All(Where(FieldGender, OpNe, int64(1)), Where(FieldNickname, OpNe, "tom")), []int64{4, 5}},
		{"type brackets: the string \"3\" is no number", All(Where(level, OpGte, int64(3)), Where(level, OpLte, int64(5))), []int64{1, 2}},
		{"repeated operator", All(Where(FieldCreatedAt, OpGt, t0), Where(FieldCreatedAt, OpGt, t0.Add(time.Hour)), Where(FieldNickname, OpNe, "x")), []int64{3, 5}},
		{"in and nin merged", All(Where(FieldGender, OpIn, []any{int64(1), int64(2)}), Where(FieldGender, OpNin, []any{int64(2)})), []int64{1, 3}},
		{"or next to fields", All(Where(FieldNickname, OpContains, "Tom"), or(Where(FieldGender, OpEq, int64(1)), Where(level, OpEq, "3"))), []int64{1, 3, 5}},
		{"two ors", All(or(Where(FieldGender, OpEq, int64(1)), Where(FieldGender, OpEq, int64(2))), or(Where(FieldGroups, OpEq, int64(4)), Where(FieldGroups, OpEq, int64(10)))), []int64{1, 2}},
		{"one-branch or", All(Where(FieldGender, OpEq, int64(1)), or(Where(FieldGender, OpNe, int64(2)))), []int64{1, 3}},
		{"always-true or", All(Where(FieldGender, OpEq, int64(1)), or(Filter{}, Where(FieldCity, OpEq, "a"))), []int64{1, 3}},
	}
	ids := func(filter bson.D) []int64 {
		t.Helper()
		cur, err := col.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatalf("%s: %v", extJSON(t, filter), err)
		}
		var rows []struct {
			ID int64 `bson:"_id"`
		}
		if err := cur.All(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.Validate(); err != nil {
				t.Fatalf("the case's filter is invalid: %v", err)
			}
			flat, nested := ids(tc.f.BSON()), ids(nestedBSON(tc.f))
			if !slices.Equal(nested, tc.want) {
				t.Errorf("nested %s selects %v, want %v", extJSON(t, nestedBSON(tc.f)), nested, tc.want)
			}
			if !slices.Equal(flat, tc.want) {
				t.Errorf("flat %s selects %v, want %v", extJSON(t, tc.f.BSON()), flat, tc.want)
			}
		})
	}
}

// BenchmarkFilterBSON is the cost of compiling the seed's v2.0 list filter.
func BenchmarkFilterBSON(b *testing.B) {
	f := All(Where(FieldNickname, OpContains, "Tom"), Where(FieldGender, OpEq, int64(1)), Where(FieldCreatedAt, OpGt, time.Unix(1483228800, 0)))
	for b.Loop() {
		_ = f.BSON()
	}
}

// FuzzFilterBSON builds filters from the input and checks that the flat
// BSON keeps every condition exactly once and never repeats a key in a
// document (a repeated key would be ambiguous to the server).
func FuzzFilterBSON(f *testing.F) {
	f.Add([]byte{1, 3, 0, 0, 0, 0, 1, 0, 0, 3, 0})
	f.Add([]byte{1, 4, 0, 2, 2, 0, 2, 4, 2, 2, 0, 1, 1, 0, 1, 2, 0, 3, 5})
	f.Add([]byte{2, 2, 1, 2, 0, 0, 0, 0, 0, 0, 2, 1, 0, 3, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &filterGen{data: data}
		filter := g.filter(0)
		if err := filter.Validate(); err != nil {
			t.Skip(err)
		}
		d := filter.BSON()
		if got, want := bsonConds(t, d), countConds(filter); got != want {
			t.Fatalf("%s holds %d conditions, the filter %d", extJSON(t, d), got, want)
		}
	})
}

// filterGen reads a filter from bytes; past the end every byte is 0.
type filterGen struct {
	data []byte
	pos  int
}

func (g *filterGen) next(n int) int {
	if g.pos >= len(g.data) {
		return 0
	}
	g.pos++
	return int(g.data[g.pos-1]) % n
}

func (g *filterGen) filter(depth int) Filter {
	kind := g.next(3)
	if depth >= 3 {
		kind = 0
	}
	switch kind {
	case 1, 2:
		subs := make([]Filter, 1+g.next(4))
		for i := range subs {
			subs[i] = g.filter(depth + 1)
		}
		if kind == 1 {
			return Filter{And: subs}
		}
		return Filter{Or: subs}
	}
	fields := []string{FieldGender, FieldGroups, CustomFieldPath("level"), FieldNickname}
	allOps := []Op{OpEq, OpNe, OpLt, OpLte, OpGt, OpGte, OpIn, OpNin, OpContains, OpIsNull}
	field, op, n := fields[g.next(len(fields))], allOps[g.next(len(allOps))], int64(g.next(4))
	switch op {
	case OpIn, OpNin:
		return Where(field, op, []any{n})
	case OpContains:
		return Where(field, op, fmt.Sprint(n))
	case OpIsNull:
		return Where(field, op, n%2 == 0)
	case OpEq:
		if n == 3 {
			return Where(field, op, []any{int64(1), int64(2)})
		}
	}
	return Where(field, op, n)
}

func countConds(f Filter) int {
	n := 0
	if f.Cond != nil {
		n++
	}
	for _, sub := range append(append([]Filter(nil), f.And...), f.Or...) {
		n += countConds(sub)
	}
	return n
}

// bsonConds counts the conditions of a query document, failing on a
// repeated key.
func bsonConds(t *testing.T, d bson.D) int {
	n := 0
	seen := map[string]bool{}
	for _, e := range d {
		if seen[e.Key] {
			t.Fatalf("key %q repeats in %s", e.Key, extJSON(t, d))
		}
		seen[e.Key] = true
		switch e.Key {
		case "$and", "$or":
			for _, sub := range e.Value.(bson.A) {
				n += bsonConds(t, sub.(bson.D))
			}
			continue
		}
		ops, ok := e.Value.(bson.D)
		if !ok {
			n++ // {f: v}
			continue
		}
		opSeen := map[string]bool{}
		for _, op := range ops {
			if opSeen[op.Key] {
				t.Fatalf("operator %q repeats in %s", op.Key, extJSON(t, d))
			}
			opSeen[op.Key] = true
			n++
		}
	}
	return n
}
