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

// The fixture's server authenticates, as a production MongoDB does: an
// anonymous client and a wrong password are refused, the administrator and
// a user it creates get in.
func TestServerAuthenticates(t *testing.T) {
	if os.Getenv(mongofixture.EnvURI) != "" {
		t.Skip("a real MongoDB from " + mongofixture.EnvURI + ": its own authentication settings apply")
	}
	ctx := context.Background()
	s := mongofixture.NewServer(t)
	write := func(uri string) error {
		_, err := connect(t, uri).Database("d").Collection("c").InsertOne(ctx, bson.D{{Key: "k", Value: "v"}})
		return err
	}
	if err := write(s.URI); err != nil {
		t.Fatalf("administrator: %v", err)
	}
	if err := write("mongodb://" + s.Addr + "/"); err == nil {
		t.Error("an anonymous client could write")
	}
	if err := write("mongodb://" + mongofixture.AdminUser + ":wrong@" + s.Addr + "/?authSource=admin"); err == nil {
		t.Error("a wrong password was accepted")
	}
	err := connect(t, s.URI).Database("d").RunCommand(ctx, bson.D{
		{Key: "createUser", Value: "tenant"}, {Key: "pwd", Value: "tenant-pw"},
		{Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
	}).Err()
	if err != nil {
		t.Fatalf("createUser: %v", err)
	}
	if err := write("mongodb://tenant:tenant-pw@" + s.Addr + "/d?authSource=d&authMechanism=SCRAM-SHA-256"); err != nil {
		t.Errorf("created user: %v", err)
	}
	if err := write("mongodb://tenant:nope@" + s.Addr + "/d?authSource=d&authMechanism=SCRAM-SHA-256"); err == nil {
		t.Error("created user with a wrong password got in")
	}
}
