package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The delivery side of the outbox (events.go): which entries are due,
// claiming one so that a single replica sends it, recording each attempt,
// the admin's list and retry.
//
// Claims: FerretDB does not isolate concurrent updates of one document, so
// a conditional findOneAndUpdate alone could hand one entry to two
// replicas. A claim is therefore first an insert of "<entry>:<claim n>"
// into ColEventClaims, which the unique _id grants to one replica only on
// both stores; the winner then takes the lease with findOneAndUpdate.

// outboxScan bounds the undelivered entries one DueEvents call reads.
const outboxScan = 2000

// DueEvents reads the undelivered entries in outbox order and returns
// those to send now, at most max: the first undelivered entry of each
// user (an entry waits while an earlier one of its user is undelivered,
// open included) whose retry time has come and whose lease has run out;
// and the open entries older than grace, for recovery.
func (s *Store) DueEvents(ctx context.Context, grace time.Duration, max int) (due, stale []EventEntry, err error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColEvents).Find(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{EventOpen, EventPending}}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(outboxScan))
	if err != nil {
		return nil, nil, classify(err)
	}
	var all []EventEntry
	if err := decodeAll(ctx, cur, &all); err != nil {
		return nil, nil, classify(err)
	}
	if err := s.settledView(ctx, all); err != nil {
		return nil, nil, err
	}
	now := s.Clock()
	waiting := map[int64]bool{} // users with an earlier undelivered entry
	for _, e := range all {
		if e.State == EventVoid { // decided void, not written yet: recovery writes it
			stale = append(stale, e)
			continue
		}
		head := e.UserID == 0 || !waiting[e.UserID]
		if e.UserID != 0 {
			waiting[e.UserID] = true
		}
		switch {
		case e.State == EventOpen:
			if !now.Before(e.CreatedAt.Add(grace)) {
				stale = append(stale, e)
			}
		case head && len(due) < max && !now.Before(e.NextAt) && !now.Before(e.LeaseUntil):
			due = append(due, e)
		}
	}
	return due, stale, nil
}

// ClaimEvent takes e's lease for owner, unless another replica claimed it
// since e was read; the entry as claimed comes back (nil: not claimed).
func (s *Store) ClaimEvent(ctx context.Context, e *EventEntry, owner string, lease time.Duration) (*EventEntry, error) {
	n := e.Claims + 1
	err := s.insert(ctx, ColEventClaims, bson.D{{Key: "_id", Value: fmt.Sprintf("%d:%d", e.ID, n)}, {Key: "entry", Value: e.ID},
		{Key: "owner", Value: owner}, {Key: "at", Value: s.Clock()}})
	if errors.Is(err, ErrConflict) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var out EventEntry
	// The first claim also writes the sealed settlement into the entry.
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	err = decodeOne(s.col(ColEvents).FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: e.ID}, {Key: "claims", Value: e.Claims}, {Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{EventOpen, EventPending}}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "claims", Value: n}, {Key: "lease_owner", Value: owner},
			{Key: "lease_until", Value: s.Clock().Add(lease)}, {Key: "state", Value: EventPending}, {Key: "event", Value: e.Event},
			{Key: "user_id", Value: e.UserID}, {Key: "data", Value: data}, {Key: "recovered", Value: e.Recovered}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)), &out)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil // delivered or claimed in between
	}
	if err != nil {
		return nil, classify(err)
	}
	return &out, nil
}

// DeliveryOutcome is how an attempt ended.
type DeliveryOutcome struct {
	Attempt   DeliveryAttempt
	Delivered bool
	Dead      bool      // give up: undelivered for too long
	NextAt    time.Time // when not delivered nor dead
}

// RecordDelivery writes an attempt of e by its lease holder and releases
// the lease. It changes nothing when the lease went to another replica
// meanwhile (the attempt then stays out of the log; the entry is sent
// again, as at-least-once allows).
func (s *Store) RecordDelivery(ctx context.Context, e *EventEntry, o DeliveryOutcome) error {
	log := append(e.Log, o.Attempt)
	if len(log) > MaxDeliveryLog {
		log = log[len(log)-MaxDeliveryLog:]
	}
	now := s.Clock()
	set := bson.D{{Key: "attempts", Value: e.Attempts + 1}, {Key: "log", Value: log}, {Key: "last_status", Value: o.Attempt.Status},
		{Key: "last_error", Value: o.Attempt.Error}, {Key: "lease_until", Value: now}}
	switch {
	case o.Delivered:
		set = append(set, bson.E{Key: "state", Value: EventDelivered}, bson.E{Key: "delivered_at", Value: now})
	case o.Dead:
		set = append(set, bson.E{Key: "state", Value: EventDead}, bson.E{Key: "dead_at", Value: now})
	default:
		set = append(set, bson.E{Key: "next_at", Value: o.NextAt})
	}
	octx, cancel := s.opContext(context.WithoutCancel(ctx))
	defer cancel()
	_, err := s.col(ColEvents).UpdateOne(octx, bson.D{{Key: "_id", Value: e.ID}, {Key: "lease_owner", Value: e.LeaseOwner}, {Key: "claims", Value: e.Claims}},
		bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return classify(err)
	}
	if o.Delivered || o.Dead {
		// The claims of a settled entry are never consulted again.
		if _, err := s.col(ColEventClaims).DeleteMany(octx, bson.D{{Key: "entry", Value: e.ID}}); err != nil {
			s.log.Debug("removing an event's claims failed", "id", e.ID, "error", err)
		}
	}
	return nil
}

// RetryDeadEvent makes dead entry id pending again, with a new day before
// it is dead again. ErrNotFound: no such entry, or it is not dead (any
// more). Of concurrent retries one wins: the retry of a dead spell is an
// insert of "<id>:retry:<its start>" (FerretDB's findAndModify alone is
// not isolated, so several could see the entry still dead).
func (s *Store) RetryDeadEvent(ctx context.Context, id int64) (*EventEntry, error) {
	var dead EventEntry
	octx, cancel := s.opContext(ctx)
	err := decodeOne(s.col(ColEvents).FindOne(octx, bson.D{{Key: "_id", Value: id}, {Key: "state", Value: EventDead}}), &dead)
	cancel()
	if err != nil {
		return nil, classify(err)
	}
	err = s.insert(ctx, ColEventClaims, bson.D{{Key: "_id", Value: fmt.Sprintf("%d:retry:%d", id, dead.RetryFrom.UnixMilli())},
		{Key: "entry", Value: id}, {Key: "at", Value: s.Clock()}})
	if errors.Is(err, ErrConflict) {
		return nil, ErrNotFound // another retry took this dead spell
	}
	if err != nil {
		return nil, err
	}
	octx, cancel = s.opContext(ctx)
	defer cancel()
	now := s.Clock()
	var out EventEntry
	err = decodeOne(s.col(ColEvents).FindOneAndUpdate(octx, bson.D{{Key: "_id", Value: id}, {Key: "state", Value: EventDead}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: EventPending}, {Key: "next_at", Value: now}, {Key: "retry_from", Value: now}}},
			{Key: "$unset", Value: bson.D{{Key: "dead_at", Value: ""}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)), &out)
	if err != nil {
		return nil, classify(err)
	}
	s.notifyEvents()
	return &out, nil
}

// ExpireEvents deletes delivered and void entries created before
// delivered, and dead ones created before dead: the delivery log is kept
// for a while, not for ever (FerretDB has no TTL index).
func (s *Store) ExpireEvents(ctx context.Context, delivered, dead time.Time) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := s.col(ColEvents).DeleteMany(ctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{EventDelivered, EventVoid}}}}, {Key: "created_at", Value: bson.D{{Key: "$lt", Value: delivered}}}},
		bson.D{{Key: "state", Value: EventDead}, {Key: "retry_from", Value: bson.D{{Key: "$lt", Value: dead}}}},
	}}})
	if err != nil {
		return 0, classify(err)
	}
	// Claims and settlements that old decide nothing any more (an open
	// entry losing its settlement is judged again by recovery).
	if _, err := s.col(ColEventClaims).DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: delivered}}}}); err != nil {
		return res.DeletedCount, classify(err)
	}
	return res.DeletedCount, nil
}

// OutboxDepth counts the undelivered entries (open and pending).
func (s *Store) OutboxDepth(ctx context.Context) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	n, err := s.col(ColEvents).CountDocuments(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{EventOpen, EventPending}}}}})
	return n, classify(err)
}

// EventQuery filters the outbox; zero fields do not filter. States are
// EventPending (open ones included), EventDelivered, EventDead.
type EventQuery struct {
	Event, State  string
	UserID        int64
	Since, Until  time.Time // created_at >= Since, < Until
	Limit, Offset int64
}

// ListEvents reads the outbox newest first, with the number of matches.
func (s *Store) ListEvents(ctx context.Context, q EventQuery) ([]EventEntry, int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	filter := bson.D{}
	if q.Event != "" {
		filter = append(filter, bson.E{Key: "event", Value: q.Event})
	}
	switch q.State {
	case "":
		filter = append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$ne", Value: EventVoid}}})
	case EventPending:
		filter = append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{EventOpen, EventPending}}}})
	default:
		filter = append(filter, bson.E{Key: "state", Value: q.State})
	}
	if q.UserID != 0 {
		filter = append(filter, bson.E{Key: "user_id", Value: q.UserID})
	}
	filter = withTimeRange(filter, "created_at", q.Since, q.Until)
	total, err := s.col(ColEvents).CountDocuments(ctx, filter)
	if err != nil {
		return nil, 0, classify(err)
	}
	cur, err := s.col(ColEvents).Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(q.Limit).SetSkip(q.Offset))
	if err != nil {
		return nil, 0, classify(err)
	}
	out := []EventEntry{}
	if err := decodeAll(ctx, cur, &out); err != nil {
		return nil, 0, classify(err)
	}
	// Sealed entries not attempted yet show their settlement's user and
	// data (the list's filters read the entries as written).
	if err := s.settledView(ctx, out); err != nil {
		return nil, 0, err
	}
	// An entry decided void a moment ago (its change refused) is not an
	// event; the page is a row short until the entry says so too.
	out = slices.DeleteFunc(out, func(e EventEntry) bool { return e.State == EventVoid })
	return out, total, nil
}
