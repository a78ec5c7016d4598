// Package tenantdb is the operator's only reach into tenant databases: a ping
// for the DatabaseReady condition and a drop for deletionPolicy Delete. It
// keeps one client per MongoDB URI, since many tenants usually share one
// server and every reconcile pings. A tenant-supplied URI (TenantURI) is
// dialed only under internal/mongouri's policy.
package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"userve.dev/userve/internal/mongouri"
)

// DefaultTimeout bounds each ping and drop, so an unreachable server costs a
// reconcile worker seconds, not minutes.
const DefaultTimeout = 5 * time.Second

// idle is how long an unused client is kept.
const idle = 15 * time.Minute

// Pool holds MongoDB clients by URI. The zero value is not usable; call New.
type Pool struct {
	mu      sync.Mutex
	clients map[URI]*entry
	timeout time.Duration
	now     func() time.Time
	monitor *event.CommandMonitor
}

type entry struct {
	client   *mongo.Client
	lastUsed time.Time
	// The last ping: when and its answer (Ping).
	pingMu  sync.Mutex
	pinged  time.Time
	pingErr error
	// rolesRefused: the store answered NotImplemented to roles (FerretDB
	// v1), so a user without roles is as confined as it can be.
	rolesRefused bool
	// users is the last listing of the server's users (listedUser).
	users usersSnapshot
}

// noRoles records that the store at uri has no roles.
func (p *Pool) noRoles(uri URI) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.clients[uri]; ok {
		e.rolesRefused = true
	}
}

// hasNoRoles says whether the store at uri refused roles before.
func (p *Pool) hasNoRoles(uri URI) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.clients[uri]
	return ok && e.rolesRefused
}

// Option configures a Pool.
type Option func(*Pool)

// WithMonitor has every client report its commands to m (tests count the
// commands a reconcile sends).
func WithMonitor(m *event.CommandMonitor) Option { return func(p *Pool) { p.monitor = m } }

// New is an empty pool whose calls give up after timeout (0: DefaultTimeout).
func New(timeout time.Duration, opts ...Option) *Pool {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	p := &Pool{clients: map[URI]*entry{}, timeout: timeout, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// PingFresh is how long a ping's answer stands for every caller of the
// same URI: thousands of tenants on the operator's default URI share one
// ping instead of sending one each per reconcile, which queued behind each
// other on a busy server.
const PingFresh = 2 * time.Second

// Ping checks that the server at uri answers, or answered within PingFresh.
func (p *Pool) Ping(ctx context.Context, uri URI) (err error) {
	defer hide(ctx, uri, "ping", &err)
	c, err := p.client(uri)
	if err != nil {
		return err
	}
	p.mu.Lock()
	e := p.clients[uri]
	p.mu.Unlock()
	if e == nil {
		return p.ping(ctx, c)
	}
	// One ping at a time per URI; those who waited take its answer.
	e.pingMu.Lock()
	defer e.pingMu.Unlock()
	if !e.pinged.IsZero() && p.now().Sub(e.pinged) < PingFresh {
		return e.pingErr
	}
	err = p.ping(ctx, c)
	if ctx.Err() == nil {
		// A caller who gave up says nothing of the server.
		e.pingErr, e.pinged = err, p.now()
	}
	return err
}

func (p *Pool) ping(ctx context.Context, c *mongo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := c.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping MongoDB: %w", err)
	}
	return nil
}

// DropDatabase drops the named database, which is not an error when it does
// not exist.
func (p *Pool) DropDatabase(ctx context.Context, uri URI, database string) (err error) {
	defer hide(ctx, uri, "drop database", &err)
	if database == "" {
		return errors.New("drop database: empty name")
	}
	c, err := p.client(uri)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := c.Database(database).Drop(ctx); err != nil {
		return fmt.Errorf("drop database %s: %w", database, err)
	}
	return nil
}

// Close disconnects every client.
func (p *Pool) Close(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uri, e := range p.clients {
		_ = e.client.Disconnect(ctx)
		delete(p.clients, uri)
	}
}

func (p *Pool) client(uri URI) (*mongo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.evictIdle(now)
	if e, ok := p.clients[uri]; ok {
		e.lastUsed = now
		return e.client, nil
	}
	co := options.Client().ApplyURI(uri.value)
	if uri.tenant {
		var err error
		if co, err = mongouri.ClientOptions(uri.value); err != nil {
			return nil, err
		}
	}
	if p.monitor != nil {
		co.SetMonitor(p.monitor)
	}
	// Connect does not dial: it validates the URI and starts monitoring.
	c, err := mongo.Connect(co.
		SetServerSelectionTimeout(p.timeout).
		SetConnectTimeout(p.timeout).
		SetMaxPoolSize(4).
		SetAppName("userve-operator"))
	if err != nil {
		// The driver's error may quote the URI, password included.
		return nil, errors.New("invalid MongoDB URI")
	}
	p.clients[uri] = &entry{client: c, lastUsed: now}
	return c, nil
}

func (p *Pool) evictIdle(now time.Time) {
	for uri, e := range p.clients {
		if now.Sub(e.lastUsed) > idle {
			go e.client.Disconnect(context.Background())
			delete(p.clients, uri)
		}
	}
}

// Len is the number of clients held, for tests.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}
