package tenantdb

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

func TestJudge(t *testing.T) {
	me := Owner{Namespace: "shop", Name: "acme", UID: "u2"}
	cases := []struct {
		name         string
		rec          *Owner
		empty, adopt bool
		want         Outcome
	}{
		{"new or empty database", nil, true, false, Claimed},
		{"data without a record", nil, false, false, NotOwned},
		{"data without a record, used before records existed", nil, false, true, Claimed},
		{"own record", &Owner{"shop", "acme", "u2"}, false, false, Owned},
		{"own name after Retain, new UID", &Owner{"shop", "acme", "u1"}, false, false, Adopted},
		{"same name, another namespace", &Owner{"other", "acme", "u1"}, true, true, NotOwned},
		{"same namespace, another name", &Owner{"shop", "bolt", "u1"}, true, true, NotOwned},
	}
	for _, c := range cases {
		if got := Judge(c.rec, me, c.empty, c.adopt); got != c.want {
			t.Errorf("%s: Judge = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOnlyReadWrite(t *testing.T) {
	if !onlyReadWrite([]role{{"readWrite", "d"}}, "d") {
		t.Error("readWrite on d refused")
	}
	for _, roles := range [][]role{nil, {{"readWrite", "e"}}, {{"dbOwner", "d"}}, {{"readWrite", "d"}, {"read", "admin"}}} {
		if onlyReadWrite(roles, "d") {
			t.Errorf("%v taken for readWrite on d only", roles)
		}
	}
}

func TestUserURI(t *testing.T) {
	u := User{Database: "shop_acme", Name: "userve.shop.acme", Password: "p@ss:w/rd"}
	cases := []struct{ base, want string }{
		{"mongodb://root:secret@db:27017/?authSource=admin",
			"mongodb://userve.shop.acme:p%40ss%3Aw%2Frd@db:27017/shop_acme?authMechanism=SCRAM-SHA-256&authSource=shop_acme"},
		{"mongodb://a:1,b:2,c:3/admin?replicaSet=rs0&tls=true&authMechanism=SCRAM-SHA-1",
			"mongodb://userve.shop.acme:p%40ss%3Aw%2Frd@a:1,b:2,c:3/shop_acme?authMechanism=SCRAM-SHA-256&authSource=shop_acme&replicaSet=rs0&tls=true"},
		{"mongodb+srv://x%40y:z@cluster.example.com",
			"mongodb+srv://userve.shop.acme:p%40ss%3Aw%2Frd@cluster.example.com/shop_acme?authMechanism=SCRAM-SHA-256&authSource=shop_acme"},
	}
	for _, c := range cases {
		got, err := UserURI(c.base, u)
		if err != nil || got != c.want {
			t.Errorf("UserURI(%q) = %q, %v; want %q", c.base, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "http://db/", "mongodb://", "mongodb://user@/x", "mongodb://db/?a=%zz"} {
		if got, err := UserURI(bad, u); err == nil {
			t.Errorf("UserURI(%q) = %q, want an error", bad, got)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error quotes the URI: %v", err)
		}
	}
	if _, err := UserURI("mongodb://db/", User{Database: "d", Name: "n"}); err == nil {
		t.Error("a user without a password got a URI")
	}
}

// FuzzUserURI: whatever the operator's URI, a URI built from it either is
// refused or parses back, for the driver, to exactly the tenant's user,
// password and database, with nothing of the base's credentials.
func FuzzUserURI(f *testing.F) {
	for _, s := range []string{
		"mongodb://root:secret@db:27017/?authSource=admin",
		"mongodb://a:1,b:2/admin?replicaSet=rs0&tls=true",
		"mongodb+srv://u:p@cluster.example.com/?retryWrites=true",
		"mongodb://db/?authMechanismProperties=SERVICE_NAME:x",
		"mongodb://@db",
	} {
		f.Add(s, "pa:ss@/word")
	}
	f.Fuzz(func(t *testing.T, base, password string) {
		if password == "" {
			return
		}
		u := User{Database: "shop_acme", Name: "userve.shop.acme", Password: password}
		out, err := UserURI(base, u)
		if err != nil {
			return
		}
		if name, pw, ok := Credentials(out); !ok || name != u.Name || pw != u.Password {
			t.Fatalf("Credentials(%q) = %q, %q, %v", out, name, pw, ok)
		}
		if strings.HasPrefix(base, "mongodb+srv://") {
			// SRV URIs resolve DNS when parsed; check the plain form.
			out = "mongodb://" + strings.TrimPrefix(out, "mongodb+srv://")
		}
		cs, err := connstring.Parse(out)
		if err != nil {
			// The hosts or options of base were already invalid.
			if _, baseErr := connstring.Parse(strings.Replace(base, "mongodb+srv://", "mongodb://", 1)); baseErr == nil {
				t.Fatalf("UserURI(%q) = %q, which does not parse: %v", base, out, err)
			}
			return
		}
		if cs.Username != u.Name || cs.Password != u.Password || cs.AuthSource != u.Database || cs.Database != u.Database {
			t.Fatalf("UserURI(%q) = %q parses to user %q password %q authSource %q db %q", base, out, cs.Username, cs.Password, cs.AuthSource, cs.Database)
		}
	})
}
