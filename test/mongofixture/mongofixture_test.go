package mongofixture_test

import (
	"context"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

func TestRoundTripThroughDriver(t *testing.T) {
	ctx := context.Background()
	db := mongofixture.NewDatabase(t)
	coll := db.Collection("things")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "Tom"}}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		ID   int    `bson:"_id"`
		Name string `bson:"name"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "name", Value: "Tom"}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.ID != 1 || got.Name != "Tom" {
		t.Fatalf("read back %+v, want {1 Tom}", got)
	}
}

func TestDatabasesAreIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := mongofixture.NewDatabase(t), mongofixture.NewDatabase(t)
	if a.Name() == b.Name() {
		t.Fatalf("two tests share database %q", a.Name())
	}
	if _, err := a.Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	n, err := b.Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s sees %d documents written to %s", b.Name(), n, a.Name())
	}
}

func TestPrivateServerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	s := mongofixture.NewServer(t)
	write := func() error {
		c := connect(t, s.URI)
		_, err := c.Database("d").Collection("c").InsertOne(ctx, bson.D{{Key: "k", Value: "v"}})
		return err
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	n, err := connect(t, s.URI).Database("d").Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("after restart: %d documents, err %v; want 1", n, err)
	}
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}
