package store

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"

	"userve.dev/userve/test/mongofixture"
)

// A tenant's SCRAMKeys carry its authenticator (and the keys derived from
// its password) from one client to the next, and never let a client of
// other credentials in with them: a wrong password fails, a rotated one
// gets keys of its own.
func TestSCRAMKeysAreKeptAcrossClientsOfTheSameCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := mongofixture.NewDatabase(t)
	user := "keys_" + db.Name()
	if err := db.RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: "right-password"}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.RunCommand(context.Background(), bson.D{{Key: "dropUser", Value: user}}).Err() })
	admin, err := url.Parse(mongofixture.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	uri := func(password string) string {
		u := *admin
		u.User = url.UserPassword(user, password)
		u.RawQuery = "authSource=" + db.Name()
		return u.String()
	}
	keys := NewSCRAMKeys()
	defer keys.Close()
	ping := func(password string) (driver.Authenticator, error) {
		s, err := Connect(uri(password), db.Name(), WithSCRAMKeys(keys))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		err = s.Ping(ctx)
		keys.mu.Lock()
		defer keys.mu.Unlock()
		return keys.made, err
	}

	first, err := ping("right-password")
	if err != nil || first == nil {
		t.Fatalf("first client: %v (authenticator %v)", err, first)
	}
	for i := range 3 {
		a, err := ping("right-password")
		if err != nil {
			t.Fatalf("client %d: %v", i+2, err)
		}
		if a != first {
			t.Errorf("client %d got a new authenticator: its keys were derived again", i+2)
		}
	}
	wrong, err := ping("wrong-password")
	if err == nil {
		t.Fatal("a client with a wrong password authenticated")
	}
	if wrong == first {
		t.Error("the wrong password's client got the kept authenticator")
	}
	again, err := ping("right-password")
	if err != nil {
		t.Fatalf("the right password after a wrong one: %v", err)
	}
	if again == first || again == wrong {
		t.Error("the right password after a wrong one reused an authenticator of other credentials")
	}
}

// Prepare makes, from the URI alone, the authenticator the store's clients
// then use: nothing of it is made by the first client (a pool prepares it
// when it learns the tenant, so that it is not allocated among an
// activation's short-lived objects). A URI that names a mechanism is left
// to the driver.
func TestPreparedSCRAMKeysAreTheOnesClientsUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := mongofixture.NewDatabase(t)
	user := "prepared_" + db.Name()
	if err := db.RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: "pw"}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.RunCommand(context.Background(), bson.D{{Key: "dropUser", Value: user}}).Err() })
	admin, err := url.Parse(mongofixture.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	u := *admin
	u.User = url.UserPassword(user, "pw")
	u.RawQuery = "authSource=" + db.Name()
	keys := NewSCRAMKeys()
	defer keys.Close()
	made := func() driver.Authenticator {
		keys.mu.Lock()
		defer keys.mu.Unlock()
		return keys.made
	}

	named := u
	named.RawQuery += "&authMechanism=SCRAM-SHA-256"
	keys.Prepare(named.String())
	if made() != nil {
		t.Fatal("Prepare made an authenticator for a URI that names its mechanism")
	}
	keys.Prepare(u.String())
	prepared := made()
	if prepared == nil {
		t.Fatal("Prepare made no authenticator")
	}
	for i := range 2 {
		s, err := Connect(u.String(), db.Name(), WithSCRAMKeys(keys))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Ping(ctx)
		_ = s.Close(context.Background())
		if err != nil {
			t.Fatalf("client %d: %v", i+1, err)
		}
		if made() != prepared {
			t.Errorf("client %d made its own authenticator instead of the prepared one", i+1)
		}
	}
}
