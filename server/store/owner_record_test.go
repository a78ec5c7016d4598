package store_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// The operator keeps an ownership record in the tenant's database (the
// reserved collection _userve_owner, see controllers/tenantdb). The store
// opens over it and never touches it.
func TestStoreWorksBesideTheOwnershipRecord(t *testing.T) {
	ctx := ctxT(t)
	db := mongofixture.NewDatabase(t)
	record := bson.D{{Key: "_id", Value: "owner"}, {Key: "namespace", Value: "shop"}, {Key: "name", Value: "acme"}, {Key: "uid", Value: "u1"}}
	if _, err := db.Collection("_userve_owner").InsertOne(ctx, record); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, mongofixture.URI(t), db.Name())
	if err != nil {
		t.Fatalf("Open beside the record: %v", err)
	}
	defer s.Close(context.Background())
	if err := s.CreateProfile(ctx, &store.Profile{Nickname: "ann"}); err != nil {
		t.Fatal(err)
	}
	page, err := s.ListProfiles(ctx, store.ProfileQuery{Limit: 10, Count: true})
	if err != nil || len(page.Profiles) != 1 {
		t.Fatalf("list: %+v, %v", page, err)
	}
	var got bson.D
	if err := db.Collection("_userve_owner").FindOne(ctx, bson.D{}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(record) {
		t.Errorf("the record changed: %v", got)
	}
}
