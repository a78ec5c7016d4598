package controllers

import (
	"crypto/sha256"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"userve.dev/userve/controllers/tenantdb"
)

// dbChecks remembers, per tenant, the database it was last seen to own and
// the database user last made to hold its password, so that reconciles
// triggered by events (a move's steps, the pool's endpoints changing, an
// owned object edited) do not repeat those MongoDB commands: on FerretDB a
// user lookup reads every stored user, so 10,000 pooled tenants made each
// of their reconciles slower as the tenants grew. A check is trusted for
// the resync interval: the periodic resync comes that long after the
// tenant's last reconcile, so it checks again; a restarted operator does
// all of them again; a rotation never trusts one.
type dbChecks struct {
	mu   sync.Mutex
	seen map[types.UID]dbCheck
}

type dbCheck struct {
	database string
	claimed  time.Time
	// The user: its name, a digest of the password it was given or
	// confirmed with, what the store enforces, and when.
	user     string
	password [sha256.Size]byte
	iso      tenantdb.Isolation
	userAt   time.Time
}

func (c *dbChecks) get(uid types.UID) dbCheck {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[uid]
}

func (c *dbChecks) update(uid types.UID, f func(*dbCheck)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[types.UID]dbCheck{}
	}
	e := c.seen[uid]
	f(&e)
	c.seen[uid] = e
}

// claimFresh says whether the tenant was seen to own database within ttl.
func (c *dbChecks) claimFresh(uid types.UID, database string, ttl time.Duration) bool {
	e := c.get(uid)
	return e.database == database && time.Since(e.claimed) < ttl
}

func (c *dbChecks) claimedNow(uid types.UID, database string) {
	c.update(uid, func(e *dbCheck) {
		if e.database != database {
			*e = dbCheck{}
		}
		e.database, e.claimed = database, time.Now()
	})
}

// userFresh is what the store enforced for the tenant's user, made or
// confirmed with password within ttl.
func (c *dbChecks) userFresh(uid types.UID, database, user, password string, ttl time.Duration) (tenantdb.Isolation, bool) {
	e := c.get(uid)
	if e.database != database || e.user != user || e.password != sha256.Sum256([]byte(password)) || time.Since(e.userAt) >= ttl {
		return 0, false
	}
	return e.iso, true
}

func (c *dbChecks) userNow(uid types.UID, database, user, password string, iso tenantdb.Isolation) {
	c.update(uid, func(e *dbCheck) {
		if e.database != database {
			*e = dbCheck{database: database}
		}
		e.user, e.password, e.iso, e.userAt = user, sha256.Sum256([]byte(password)), iso, time.Now()
	})
}

// forget drops what is known of a tenant (deleted, or its database failed).
func (c *dbChecks) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, uid)
}

// dbCheckTTL is how long a check is trusted: the resync interval.
func (r *UserServiceReconciler) dbCheckTTL() time.Duration { return r.ResyncInterval }
