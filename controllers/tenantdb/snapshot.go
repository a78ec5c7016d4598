package tenantdb

import (
	"context"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// UsersFresh is how long one listing of every user of a server answers
// the checks of existing users. On FerretDB, usersInfo for one user reads
// every stored user (0.8 s at 10,000 users on the bench machine), so an
// operator restarted with 10,000 tenants spent hours in lookups; one
// listing of all of them costs about what one lookup does.
const UsersFresh = 30 * time.Second

// usersSnapshot is the last listing of a server's users: roles by
// "database.user".
type usersSnapshot struct {
	mu    sync.Mutex
	at    time.Time
	users map[string][]role
	// failed: the server refuses the listing (a message too large, no
	// right to list every database's users): ask per user from now on.
	failed bool
}

// listedUser answers from the snapshot of the server's users, refreshed
// when older than UsersFresh: exists only when listed. known is false when
// the snapshot cannot answer (a user missing from it may have been created
// since; the caller asks the server about that user alone).
func (p *Pool) listedUser(ctx context.Context, c *mongo.Client, uri URI, database, name string) (roles []role, known bool) {
	p.mu.Lock()
	e := p.clients[uri]
	p.mu.Unlock()
	if e == nil {
		return nil, false
	}
	s := &e.users
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return nil, false
	}
	if s.users == nil || p.now().Sub(s.at) >= UsersFresh {
		users, err := listUsers(ctx, c)
		if err != nil {
			if ctx.Err() == nil {
				s.failed = true
			}
			return nil, false
		}
		s.users, s.at = users, p.now()
	}
	roles, ok := s.users[database+"."+name]
	return roles, ok
}

// forgetUsers drops the snapshot: a user was created or changed.
func (p *Pool) forgetUsers(uri URI) {
	p.mu.Lock()
	e := p.clients[uri]
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.users.mu.Lock()
	defer e.users.mu.Unlock()
	e.users.users = nil
}

func listUsers(ctx context.Context, c *mongo.Client) (map[string][]role, error) {
	var out usersInfoAnswer
	cmd := bson.D{{Key: "usersInfo", Value: bson.D{{Key: "forAllDBs", Value: true}}}}
	if err := c.Database("admin").RunCommand(ctx, cmd).Decode(&out); err != nil {
		return nil, err
	}
	users := make(map[string][]role, len(out.Users))
	for _, u := range out.Users {
		users[u.DB+"."+u.User] = u.Roles
	}
	return users, nil
}
