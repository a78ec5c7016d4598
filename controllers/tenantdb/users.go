package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Server error codes the operator acts on.
const (
	// codeNotImplemented answers createUser or updateUser with roles on
	// FerretDB v1, which authenticates users but has no authorization.
	codeNotImplemented = 238
	codeUserNotFound   = 11
	codeUserExists     = 51003
)

// Isolation is what the store enforces for a tenant's user.
type Isolation int

const (
	// Confined: the user holds readWrite on its own database and nothing
	// else (MongoDB).
	Confined Isolation = iota
	// NotConfined: the store took the user but refused its roles (FerretDB
	// v1): the user authenticates, and then reaches every database.
	NotConfined
)

// User is one tenant's MongoDB user, defined on the tenant's database.
// Users exist only on the operator's default MongoDB: the uri of the
// methods below is always the operator's own (OperatorURI).
type User struct {
	Database string
	Name     string
	Password string
}

// tenantRoles is the only role a tenant user gets: readWrite on its own
// database.
func tenantRoles(database string) bson.A {
	return bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: database}}}
}

// EnsureUser makes u exist with readWrite on its database and nothing else.
// A missing user is created with u.Password; an existing one gets
// u.Password only when setPassword (a rotation, or a lost Secret), and its
// roles are put back if they drifted. Whether the store enforces the role is
// read from its answer: a NotImplemented to roles means it cannot, and the
// user is then created without roles, so that authentication still holds.
func (p *Pool) EnsureUser(ctx context.Context, uri string, u User, setPassword bool) (Isolation, error) {
	if u.Database == "" || u.Name == "" || u.Password == "" {
		return 0, errors.New("ensure user: database, name and password are required")
	}
	c, err := p.client(OperatorURI(uri))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	db := c.Database(u.Database)

	if setPassword {
		// A new tenant, most of the time: create first, and look up only a
		// user that exists (on FerretDB a lookup reads every stored user).
		if iso, created, err := createNew(ctx, db, u); err != nil || created {
			if created && iso == NotConfined {
				p.noRoles(OperatorURI(uri))
			}
			return iso, err
		}
	}
	roles, exists := p.listedUser(ctx, c, OperatorURI(uri), u.Database, u.Name)
	if !exists {
		// Not in the listing: maybe created since, or gone: ask.
		if roles, exists, err = userRoles(ctx, db, u.Name); err != nil {
			return 0, err
		}
	}
	if !exists {
		err := createUser(ctx, db, u, tenantRoles(u.Database))
		switch {
		case err == nil:
			return Confined, nil
		case hasCode(err, codeNotImplemented):
			if err := createUser(ctx, db, u, bson.A{}); err != nil && !hasCode(err, codeUserExists) {
				return 0, fmt.Errorf("create user %s on %s: %w", u.Name, u.Database, err)
			}
			return NotConfined, nil
		case hasCode(err, codeUserExists):
			// Created meanwhile by another reconcile: set what we hold.
			setPassword = true
		default:
			return 0, fmt.Errorf("create user %s on %s: %w", u.Name, u.Database, err)
		}
	}

	if exists && len(roles) == 0 && !setPassword && p.hasNoRoles(OperatorURI(uri)) {
		// The store refused roles before: asking again on every resync
		// only costs a command per tenant.
		return NotConfined, nil
	}
	if exists && onlyReadWrite(roles, u.Database) {
		if setPassword {
			if err := updateUser(ctx, db, u, nil); err != nil {
				return 0, fmt.Errorf("set the password of user %s on %s: %w", u.Name, u.Database, err)
			}
		}
		return Confined, nil
	}
	cmdRoles := tenantRoles(u.Database)
	err = updateUser(ctx, db, u.withPassword(setPassword), cmdRoles)
	if hasCode(err, codeNotImplemented) {
		p.noRoles(OperatorURI(uri))
		if !setPassword {
			return NotConfined, nil
		}
		err = updateUser(ctx, db, u, nil)
		if err == nil {
			return NotConfined, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("update user %s on %s: %w", u.Name, u.Database, err)
	}
	return Confined, nil
}

// createNew creates u with readWrite on its database, or without roles on
// a store that has none; created is false when u exists already.
func createNew(ctx context.Context, db *mongo.Database, u User) (Isolation, bool, error) {
	err := createUser(ctx, db, u, tenantRoles(u.Database))
	iso := Confined
	if hasCode(err, codeNotImplemented) {
		err, iso = createUser(ctx, db, u, bson.A{}), NotConfined
	}
	switch {
	case err == nil:
		return iso, true, nil
	case hasCode(err, codeUserExists):
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("create user %s on %s: %w", u.Name, u.Database, err)
}

// withPassword keeps the password only when it is to be set.
func (u User) withPassword(set bool) User {
	if !set {
		u.Password = ""
	}
	return u
}

// DropUser removes a tenant's user; a missing user is not an error.
func (p *Pool) DropUser(ctx context.Context, uri, database, name string) error {
	c, err := p.client(OperatorURI(uri))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	err = c.Database(database).RunCommand(ctx, bson.D{{Key: "dropUser", Value: name}}).Err()
	if err != nil && !hasCode(err, codeUserNotFound) {
		return fmt.Errorf("drop user %s on %s: %w", name, database, err)
	}
	return nil
}

// UserExists says whether the user is defined on the database.
func (p *Pool) UserExists(ctx context.Context, uri, database, name string) (bool, error) {
	c, err := p.client(OperatorURI(uri))
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	_, exists, err := userRoles(ctx, c.Database(database), name)
	return exists, err
}

// usersInfoAnswer is what usersInfo answers, as far as the operator reads it.
type usersInfoAnswer struct {
	Users []struct {
		User  string `bson:"user"`
		DB    string `bson:"db"`
		Roles []role `bson:"roles"`
	} `bson:"users"`
}

func userRoles(ctx context.Context, db *mongo.Database, name string) ([]role, bool, error) {
	var out usersInfoAnswer
	err := db.RunCommand(ctx, bson.D{{Key: "usersInfo", Value: bson.D{{Key: "user", Value: name}, {Key: "db", Value: db.Name()}}}}).Decode(&out)
	if err != nil {
		return nil, false, fmt.Errorf("look up user %s on %s: %w", name, db.Name(), err)
	}
	for _, u := range out.Users {
		if u.User == name && u.DB == db.Name() {
			return u.Roles, true, nil
		}
	}
	return nil, false, nil
}

type role struct {
	Role string `bson:"role"`
	DB   string `bson:"db"`
}

// onlyReadWrite: the roles are exactly readWrite on database.
func onlyReadWrite(roles []role, database string) bool {
	return len(roles) == 1 && roles[0] == role{Role: "readWrite", DB: database}
}

func createUser(ctx context.Context, db *mongo.Database, u User, roles bson.A) error {
	return db.RunCommand(ctx, bson.D{
		{Key: "createUser", Value: u.Name},
		{Key: "pwd", Value: u.Password},
		{Key: "roles", Value: roles},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
	}).Err()
}

// updateUser sets the password when u has one and the roles when not nil.
func updateUser(ctx context.Context, db *mongo.Database, u User, roles bson.A) error {
	cmd := bson.D{{Key: "updateUser", Value: u.Name}}
	if u.Password != "" {
		cmd = append(cmd, bson.E{Key: "pwd", Value: u.Password}, bson.E{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}})
	}
	if roles != nil {
		cmd = append(cmd, bson.E{Key: "roles", Value: roles})
	}
	if len(cmd) == 1 {
		return nil
	}
	return db.RunCommand(ctx, cmd).Err()
}

func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

// UserURI is base (the operator's URI: hosts and options) with u's
// credentials instead of base's, the tenant database as path and
// authSource, and SCRAM-SHA-256. Options other than authSource,
// authMechanism and authMechanismProperties are kept (tls, replicaSet...).
func UserURI(base string, u User) (string, error) {
	scheme, rest, ok := strings.Cut(base, "://")
	if !ok || (scheme != "mongodb" && scheme != "mongodb+srv") {
		return "", errors.New("the MongoDB URI must start with mongodb:// or mongodb+srv://")
	}
	if u.Name == "" || u.Password == "" || u.Database == "" {
		return "", errors.New("user URI: database, name and password are required")
	}
	hosts, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts, tail = rest[:i], rest[i:]
	}
	if at := strings.LastIndexByte(hosts, '@'); at >= 0 {
		hosts = hosts[at+1:]
	}
	if hosts == "" || strings.ContainsAny(hosts, " \t\r\n") {
		return "", errors.New("the MongoDB URI names no host")
	}
	var query string
	if q := strings.IndexByte(tail, '?'); q >= 0 {
		query = tail[q+1:]
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return "", errors.New("the MongoDB URI's options cannot be parsed")
	}
	for k := range values {
		switch strings.ToLower(k) {
		case "authsource", "authmechanism", "authmechanismproperties":
			delete(values, k)
		}
	}
	values.Set("authSource", u.Database)
	values.Set("authMechanism", "SCRAM-SHA-256")
	return scheme + "://" + url.UserPassword(u.Name, u.Password).String() + "@" + hosts +
		"/" + url.PathEscape(u.Database) + "?" + values.Encode(), nil
}

// Credentials reads the user name and password of a URI built by UserURI,
// without resolving anything (a mongodb+srv URI is not looked up).
func Credentials(uri string) (user, password string, ok bool) {
	_, rest, found := strings.Cut(uri, "://")
	if !found {
		return "", "", false
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return "", "", false
	}
	rawUser, rawPassword, found := strings.Cut(rest[:at], ":")
	if !found {
		return "", "", false
	}
	user, err1 := url.PathUnescape(rawUser)
	password, err2 := url.PathUnescape(rawPassword)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return user, password, true
}
