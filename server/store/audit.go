package store

import (
	"context"
	"math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColAudit is the audit log of admin actions through the management API.
// Only the server writes it: an entry is inserted before its action runs
// (state pending) and sealed once afterwards (done or failed); no route
// edits or deletes one. Entries older than the retention period are
// deleted in code (FerretDB has no TTL index).
const ColAudit = "audit_log"

// AuditViaConsole marks the entries of actions taken in the tenant console
// (server/console); the others came through the API with a bearer token.
const AuditViaConsole = "console"

// Audit entry states.
const (
	AuditPending = "pending" // written before the action; outcome unknown if it stays so
	AuditDone    = "done"    // the action answered 2xx
	AuditFailed  = "failed"  // the action answered an error: nothing applied
)

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColAudit, Name: "at", Keys: bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}},
		IndexSpec{Collection: ColAudit, Name: "admin_at", Keys: bson.D{{Key: "admin", Value: 1}, {Key: "at", Value: -1}}},
		IndexSpec{Collection: ColAudit, Name: "user_ids_at", Keys: bson.D{{Key: "user_ids", Value: 1}, {Key: "at", Value: -1}}},
		IndexSpec{Collection: ColAudit, Name: "action_at", Keys: bson.D{{Key: "action", Value: 1}, {Key: "at", Value: -1}}},
	)
}

// AuditEntry is one admin action.
type AuditEntry struct {
	ID      bson.ObjectID `bson:"_id"`
	At      time.Time     `bson:"at"`
	Admin   string        `bson:"admin"`  // the admin token's name
	Action  string        `bson:"action"` // the route's OpenAPI operation id
	Method  string        `bson:"method"`
	Path    string        `bson:"path"`  // the request path
	Query   string        `bson:"query"` // its query string, at most auditMaxQuery bytes
	UserIDs []int64       `bson:"user_ids"`
	Remote  string        `bson:"remote"`
	// Via is where the admin acted: AuditViaConsole, or "" for the API.
	Via    string `bson:"via,omitempty"`
	State  string `bson:"state"`
	Status int    `bson:"status,omitempty"` // the HTTP status answered
	// Changes are the profile fields an action changed, before and after.
	Changes []AuditChange `bson:"changes,omitempty"`
	// Truncated says Changes or UserIDs were cut to their bounds.
	Truncated bool `bson:"truncated,omitempty"`
}

// AuditChange is one field's value before and after (nil: absent).
type AuditChange struct {
	Field  string `bson:"field"`
	Before any    `bson:"before"`
	After  any    `bson:"after"`
}

// BeginAudit inserts entry as pending, with a new id and the store's time.
// The caller runs the action only once this succeeded.
func (s *Store) BeginAudit(ctx context.Context, e *AuditEntry) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	e.ID, e.At, e.State = bson.NewObjectID(), s.Now(), AuditPending
	if e.UserIDs == nil {
		e.UserIDs = []int64{}
	}
	_, err := s.col(ColAudit).InsertOne(ctx, e)
	return classify(err)
}

// SealAudit records an entry's outcome, once: a sealed entry is never
// changed again.
func (s *Store) SealAudit(ctx context.Context, e *AuditEntry) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	set := bson.D{{Key: "state", Value: e.State}, {Key: "status", Value: e.Status}, {Key: "user_ids", Value: e.UserIDs}}
	if len(e.Changes) > 0 {
		set = append(set, bson.E{Key: "changes", Value: e.Changes})
	}
	if e.Truncated {
		set = append(set, bson.E{Key: "truncated", Value: true})
	}
	_, err := s.col(ColAudit).UpdateOne(ctx, bson.D{{Key: "_id", Value: e.ID}, {Key: "state", Value: AuditPending}},
		bson.D{{Key: "$set", Value: set}})
	return classify(err)
}

// ExpireAudit deletes the entries older than before.
func (s *Store) ExpireAudit(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := s.col(ColAudit).DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}

// MaybeExpireAudit runs ExpireAudit about once in fifty calls, standing in
// for a TTL index. Best effort: a failure is logged and retried later.
func (s *Store) MaybeExpireAudit(ctx context.Context, retention time.Duration) {
	if rand.IntN(50) != 0 {
		return
	}
	if _, err := s.ExpireAudit(ctx, s.Now().Add(-retention)); err != nil {
		s.log.Debug("audit log expiry failed", "error", err)
	}
}

// AuditQuery filters the audit log; zero fields do not filter. Newest
// first; Before pages by cursor (the id of the last entry seen).
type AuditQuery struct {
	Admin, Action string
	UserID        int64
	Since, Until  time.Time // at >= Since, at < Until
	After         *bson.ObjectID
	Limit, Offset int64
}

// ListAudit reads the log, newest first.
func (s *Store) ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	filter := bson.D{}
	if q.Admin != "" {
		filter = append(filter, bson.E{Key: "admin", Value: q.Admin})
	}
	if q.Action != "" {
		filter = append(filter, bson.E{Key: "action", Value: q.Action})
	}
	if q.UserID != 0 {
		filter = append(filter, bson.E{Key: "user_ids", Value: q.UserID})
	}
	filter = withTimeRange(filter, "at", q.Since, q.Until)
	if q.After != nil {
		// Entries sort by at then _id, both descending; ObjectIDs grow with
		// time, so "older than the cursor" is _id < cursor.
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: *q.After}}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(q.Limit).SetSkip(q.Offset)
	cur, err := s.col(ColAudit).Find(ctx, filter, opts)
	if err != nil {
		return nil, classify(err)
	}
	out := []AuditEntry{}
	if err := decodeAll(ctx, cur, &out); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// withTimeRange adds field >= since and < until to filter, each only when
// set (the audit log's and the delivery log's time filters).
func withTimeRange(filter bson.D, field string, since, until time.Time) bson.D {
	at := bson.D{}
	if !since.IsZero() {
		at = append(at, bson.E{Key: "$gte", Value: since.UTC()})
	}
	if !until.IsZero() {
		at = append(at, bson.E{Key: "$lt", Value: until.UTC()})
	}
	if len(at) > 0 {
		filter = append(filter, bson.E{Key: field, Value: at})
	}
	return filter
}
