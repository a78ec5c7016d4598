package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ColConsoleSessions holds the tenant console's admin sessions
// (docs/console.md), here rather than in a process so that every replica
// honours a login and a logout. The _id is a SHA-256 of the cookie's
// value, never the value: reading the collection does not give a usable
// cookie. Expiry is checked in code (FerretDB has no TTL index) and the
// expired documents are swept now and then.
const ColConsoleSessions = "console_sessions"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColConsoleSessions, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}},
	)
}

// ConsoleSession is one admin signed in to the console.
type ConsoleSession struct {
	ID    string `bson:"_id"`   // hex SHA-256 of the cookie value
	Admin string `bson:"admin"` // the admin token's name: the audit log's "who"
	CSRF  string `bson:"csrf"`  // the token every change must carry
	// TokenKey is a SHA-256 of the admin token signed in with: the session
	// ends when the tenant's tokens no longer hold it (a rotated or removed
	// token ends its sessions on the pods that have the new tokens).
	TokenKey  string    `bson:"token_key"`
	Address   string    `bson:"address"`
	UserAgent string    `bson:"user_agent"`
	Created   time.Time `bson:"created_at"`
	LastUsed  time.Time `bson:"last_used_at"`
	// ExpiresAt is the absolute end; an idle session ends earlier (the
	// console's idle limit, judged on LastUsed).
	ExpiresAt time.Time `bson:"expires_at"`
}

// CreateConsoleSession records a console login.
func (s *Store) CreateConsoleSession(ctx context.Context, cs *ConsoleSession) error {
	err := s.insert(ctx, ColConsoleSessions, cs)
	if err == nil {
		s.maybeSweep(ctx, ColConsoleSessions, "expires_at")
	}
	return err
}

// GetConsoleSession is the session with id, ErrNotFound when there is none
// or it is past its absolute end.
func (s *Store) GetConsoleSession(ctx context.Context, id string) (*ConsoleSession, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var cs ConsoleSession
	err := decodeOne(s.col(ColConsoleSessions).FindOne(ctx, bson.D{{Key: "_id", Value: id}}), &cs)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, classify(err)
	}
	if !s.Now().Before(cs.ExpiresAt) {
		return nil, ErrNotFound
	}
	return &cs, nil
}

// TouchConsoleSession records a use at now unless one was recorded less
// than SessionTouchEvery before: one conditional write.
func (s *Store) TouchConsoleSession(ctx context.Context, id string, now time.Time) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColConsoleSessions).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "last_used_at", Value: bson.D{{Key: "$lte", Value: now.Add(-SessionTouchEvery)}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: now}}}})
	return classify(err)
}

// DeleteConsoleSession ends a session (logout, or found idle); deleting
// one that is gone is not an error.
func (s *Store) DeleteConsoleSession(ctx context.Context, id string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColConsoleSessions).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return classify(err)
}
