package store_test

import (
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// TestListQueriesUseIndexes asks MongoDB's planner about every v2.0 filter
// and sort (and the custom-field and group queries): each must be an index
// scan. FerretDB has no comparable planner, so this runs only when
// USERVE_TEST_MONGO_URI names a real MongoDB.
func TestListQueriesUseIndexes(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	ctx := ctxT(t)
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if _, ferret := info["ferretdbVersion"]; ferret {
		t.Skip("FerretDB has no MongoDB query planner; set USERVE_TEST_MONGO_URI to a real MongoDB")
	}
	s, err := store.Open(ctx, mongofixture.URI(t), db.Name(), store.WithCustomFieldIndexes("age"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	t0 := time.Unix(1483228800, 0)
	cases := []struct {
		name   string
		filter store.Filter
		sort   string
		sorted bool // served in index order, no in-memory sort
	}{
		{"created_at range, newest first", store.Where(store.FieldCreatedAt, store.OpGt, t0), "-" + store.FieldCreatedAt, true},
		{"gender, by created_at", store.Where(store.FieldGender, store.OpEq, int64(1)), "-" + store.FieldCreatedAt, true},
		{"group__in", store.Where(store.FieldGroups, store.OpIn, []any{int64(1), int64(2)}), "", false},
		{"gender", store.Where(store.FieldGender, store.OpEq, int64(2)), "", true},
		{"nickname", store.Where(store.FieldNickname, store.OpEq, "Tom"), "", true},
		{"nickname__contains", store.Where(store.FieldNickname, store.OpContains, "Tom"), "", false},
		{"openid", store.Where(store.FieldOpenID, store.OpEq, "o"), "", false},
		{"unionid", store.Where(store.FieldUnionID, store.OpEq, "u"), "", false},
		{"user_id", store.Where(store.FieldID, store.OpEq, int64(5)), "", false},
		{"sort user_id desc", store.Filter{}, "-" + store.FieldID, true},
		{"sort created_at", store.Filter{}, store.FieldCreatedAt, true},
		{"sort updated_at", store.Filter{}, store.FieldUpdatedAt, true},
		{"custom field", store.Where(store.CustomFieldPath("age"), store.OpGte, int64(18)), store.CustomFieldPath("age"), true},
		{"seed example", store.All(store.Where(store.FieldNickname, store.OpContains, "Tom"), store.Where(store.FieldGender, store.OpEq, int64(1)), store.Where(store.FieldCreatedAt, store.OpGt, t0)), "-" + store.FieldCreatedAt, true},
	}
	for _, tc := range cases {
		sort := bson.D{{Key: store.FieldID, Value: 1}} // the default order
		if tc.sort != "" {
			dir := 1
			field := tc.sort
			if strings.HasPrefix(field, "-") {
				dir, field = -1, field[1:]
			}
			sort = bson.D{{Key: field, Value: dir}, {Key: store.FieldID, Value: dir}}
		}
		var plan bson.M
		err := db.RunCommand(ctx, bson.D{
			{Key: "explain", Value: bson.D{{Key: "find", Value: store.ColProfiles}, {Key: "filter", Value: tc.filter.BSON()}, {Key: "sort", Value: sort}}},
			{Key: "verbosity", Value: "queryPlanner"},
		}).Decode(&plan)
		if err != nil {
			t.Fatalf("%s: explain: %v", tc.name, err)
		}
		winning := bson.Raw{}
		if qp, ok := plan["queryPlanner"].(bson.D); ok {
			for _, e := range qp {
				if e.Key == "winningPlan" {
					winning, _ = bson.Marshal(e.Value)
				}
			}
		}
		text := winning.String()
		if !strings.Contains(text, "IXSCAN") || strings.Contains(text, "COLLSCAN") {
			t.Errorf("%s: winning plan is not an index scan: %s", tc.name, text)
		}
		if tc.sorted && strings.Contains(text, `"SORT"`) {
			t.Errorf("%s: winning plan sorts in memory: %s", tc.name, text)
		}
	}
}

// An index an earlier version created and this one retired is dropped at
// start-up; others stay.
func TestEnsureIndexesDropsRetiredIndexes(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	ctx := ctxT(t)
	_, err := db.Collection(store.ColFollows).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "followee_src", Value: 1}}, Options: options.Index().SetName("followee_src")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, mongofixture.URI(t), db.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	specs, err := db.Collection(store.ColFollows).Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range specs {
		names = append(names, sp.Name)
	}
	got := strings.Join(names, ",")
	if strings.Contains(got, "followee_src") || !strings.Contains(got, "followee_created") {
		t.Errorf("follows indexes after start-up: %s", got)
	}
}
