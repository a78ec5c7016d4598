package tenantdb

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/test/mongofixture"
)

// Many tenants claiming one database at once: exactly one gets it.
func TestParallelClaimsOfOneDatabase(t *testing.T) {
	database := mongofixture.NewDatabase(t).Name()
	pool := New(10 * time.Second)
	defer pool.Close(context.Background())
	const n = 30
	outcomes := make(chan Outcome, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			me := Owner{Namespace: fmt.Sprintf("ns%02d", i), Name: "acme", UID: fmt.Sprint(i)}
			c, err := pool.ClaimDatabase(context.Background(), OperatorURI(mongofixture.URI(t)), database, me, false)
			errs <- err
			outcomes <- c.Outcome
		}()
	}
	var claimed, notOwned int
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		switch <-outcomes {
		case Claimed:
			claimed++
		case NotOwned:
			notOwned++
		}
	}
	if claimed != 1 || notOwned != n-1 {
		t.Fatalf("%d claimed, %d refused, want 1 and %d", claimed, notOwned, n-1)
	}
	var recs []bson.M
	cur, err := mongofixture.Client(t).Database(database).Collection(OwnerCollection).Find(context.Background(), bson.D{})
	if err == nil {
		err = cur.All(context.Background(), &recs)
	}
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d ownership records (%v), want 1", len(recs), err)
	}
}

func TestClaimOutcomes(t *testing.T) {
	ctx := context.Background()
	uri := mongofixture.URI(t)
	p := New(10 * time.Second)
	defer p.Close(ctx)
	db := mongofixture.NewDatabase(t)
	me := Owner{Namespace: "shop", Name: "acme", UID: "u1"}

	// Empty collections (indexes made, nothing stored) count as empty.
	if err := db.CreateCollection(ctx, "profiles"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		who  Owner
		want Outcome
	}{
		{me, Claimed},
		{me, Owned},
		{Owner{"shop", "acme", "u2"}, Adopted},
		{Owner{"shop", "acme", "u2"}, Owned},
		{Owner{"other", "acme", "u3"}, NotOwned},
	}
	for i, s := range steps {
		c, err := p.ClaimDatabase(ctx, OperatorURI(uri), db.Name(), s.who, false)
		if err != nil || c.Outcome != s.want {
			t.Fatalf("step %d: %+v, %v; want %v", i, c, err, s.want)
		}
	}
	rec, err := p.DatabaseOwner(ctx, OperatorURI(uri), db.Name())
	if err != nil || rec == nil || *rec != (Owner{"shop", "acme", "u2"}) {
		t.Fatalf("record %+v (%v)", rec, err)
	}

	// Data without a record: refused, unless the tenant used it before.
	legacy := mongofixture.NewDatabase(t)
	if _, err := legacy.Collection("profiles").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if c, err := p.ClaimDatabase(ctx, OperatorURI(uri), legacy.Name(), me, false); err != nil || c.Outcome != NotOwned || c.Holder != nil {
		t.Fatalf("unrecorded data: %+v, %v", c, err)
	}
	if c, err := p.ClaimDatabase(ctx, OperatorURI(uri), legacy.Name(), me, true); err != nil || c.Outcome != Claimed {
		t.Fatalf("unrecorded data used before: %+v, %v", c, err)
	}
}

func TestEnsureUserAuthenticatesAndRotates(t *testing.T) {
	ctx := context.Background()
	uri := mongofixture.URI(t)
	p := New(10 * time.Second)
	defer p.Close(ctx)
	db := mongofixture.NewDatabase(t)
	u := User{Database: db.Name(), Name: "userve.shop.acme", Password: "first-password"}
	t.Cleanup(func() { _ = p.DropUser(context.Background(), uri, u.Database, u.Name) })

	iso, err := p.EnsureUser(ctx, uri, u, true)
	if err != nil {
		t.Fatal(err)
	}
	onMongoDB := os.Getenv(mongofixture.EnvURI) != ""
	if want := map[bool]Isolation{true: Confined, false: NotConfined}[onMongoDB]; iso != want {
		t.Errorf("isolation = %v, want %v (the server's answer to roles)", iso, want)
	}
	works := func(password string) bool {
		u2 := u
		u2.Password = password
		tu, err := UserURI(uri, u2)
		if err != nil {
			t.Fatal(err)
		}
		c, err := mongo.Connect(options.Client().ApplyURI(tu).SetTimeout(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(ctx)
		_, err = c.Database(u.Database).Collection("probe").InsertOne(ctx, bson.D{{Key: "x", Value: 1}})
		return err == nil
	}
	if !works("first-password") || works("wrong") {
		t.Fatal("the user's password is not what authenticates")
	}
	// Again without a new password: nothing changes.
	if _, err := p.EnsureUser(ctx, uri, User{Database: u.Database, Name: u.Name, Password: "ignored"}, false); err != nil {
		t.Fatal(err)
	}
	if !works("first-password") {
		t.Fatal("an ensure without setPassword changed the password")
	}
	// A rotation.
	if _, err := p.EnsureUser(ctx, uri, User{Database: u.Database, Name: u.Name, Password: "second-password"}, true); err != nil {
		t.Fatal(err)
	}
	if works("first-password") || !works("second-password") {
		t.Fatal("the rotation did not take")
	}
	if err := p.DropUser(ctx, uri, u.Database, u.Name); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.UserExists(ctx, uri, u.Database, u.Name); err != nil || ok {
		t.Fatalf("user exists after drop: %v %v", ok, err)
	}
	if err := p.DropUser(ctx, uri, u.Database, u.Name); err != nil {
		t.Errorf("dropping a missing user: %v", err)
	}
}

// TestNewUserIsCreatedWithoutALookup: a new tenant's user is created
// without usersInfo first (on FerretDB a lookup reads every stored user,
// which made each of 10,000 tenants slower than the one before); an
// existing user asked for a new password still gets it, by the lookup.
func TestNewUserIsCreatedWithoutALookup(t *testing.T) {
	ctx := context.Background()
	uri := mongofixture.URI(t)
	var mu sync.Mutex
	var commands []string
	p := New(10*time.Second, WithMonitor(&event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		commands = append(commands, e.CommandName)
	}}))
	defer p.Close(ctx)
	db := mongofixture.NewDatabase(t)
	u := User{Database: db.Name(), Name: "userve.shop.fresh", Password: "first-password"}
	t.Cleanup(func() { _ = p.DropUser(context.Background(), uri, u.Database, u.Name) })
	if _, err := p.EnsureUser(ctx, uri, u, true); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	sent := slices.Clone(commands)
	commands = nil
	mu.Unlock()
	if slices.Contains(sent, "usersInfo") || !slices.Contains(sent, "createUser") {
		t.Errorf("a new user cost %v, want createUser without usersInfo", sent)
	}
	if exists, err := p.UserExists(ctx, uri, u.Database, u.Name); err != nil || !exists {
		t.Fatalf("the user does not exist after EnsureUser (%v)", err)
	}
	u.Password = "second-password"
	if _, err := p.EnsureUser(ctx, uri, u, true); err != nil {
		t.Fatalf("a new password for an existing user: %v", err)
	}
	mu.Lock()
	sent = slices.Clone(commands)
	mu.Unlock()
	if !slices.Contains(sent, "updateUser") {
		t.Errorf("a new password for an existing user sent %v, no updateUser", sent)
	}
}

// TestExistingUsersAreCheckedFromOneListing: 30 tenants' users checked at
// once (an operator restarted: every tenant reconciled) cost one listing
// of the server's users, not a lookup each (on FerretDB each lookup reads
// every stored user: 0.8 s each at 10,000); a user created since the
// listing is still found, by a lookup of its own.
func TestExistingUsersAreCheckedFromOneListing(t *testing.T) {
	ctx := context.Background()
	uri := mongofixture.URI(t)
	setup := New(10 * time.Second)
	defer setup.Close(ctx)
	db := mongofixture.NewDatabase(t)
	const n = 30
	users := make([]User, n)
	for i := range users {
		users[i] = User{Database: db.Name(), Name: fmt.Sprintf("userve.listing.t%02d", i), Password: "pw"}
		if _, err := setup.EnsureUser(ctx, uri, users[i], true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = setup.DropUser(context.Background(), uri, users[i].Database, users[i].Name) })
	}
	var mu sync.Mutex
	lookups := 0
	listings := 0
	p := New(10*time.Second, WithMonitor(&event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "usersInfo" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if forAll, _ := e.Command.Lookup("usersInfo", "forAllDBs").BooleanOK(); forAll {
			listings++
		} else {
			lookups++
		}
	}}))
	defer p.Close(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.EnsureUser(ctx, uri, u, false)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if listings != 1 || lookups != 0 {
		t.Errorf("30 parallel checks of existing users: %d listings and %d lookups, want 1 and 0", listings, lookups)
	}
	late := User{Database: db.Name(), Name: "userve.listing.late", Password: "pw"}
	if _, err := setup.EnsureUser(ctx, uri, late, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setup.DropUser(context.Background(), uri, late.Database, late.Name) })
	if _, err := p.EnsureUser(ctx, uri, late, false); err != nil {
		t.Fatalf("a user created after the listing: %v", err)
	}
	if exists, err := p.UserExists(ctx, uri, late.Database, late.Name); err != nil || !exists {
		t.Fatalf("the late user is not there (%v)", err)
	}
}
