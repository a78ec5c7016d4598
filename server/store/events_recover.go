package store

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
)

// Recovery of open outbox entries (events.go): an entry still open after
// the grace period belongs to a change whose process died (or whose seal
// failed). Whether the change happened is read from the data it would have
// written; if it shows, the entry is sealed (marked recovered), if it
// cannot have happened, voided (kept, in case the change was only slow:
// its seal then writes the event again, events.go).

// RecoverOpenEvent settles one stale open entry. It returns false when
// the change may still complete (a ledger entry in flight): the entry is
// then left for a later pass.
func (s *Store) RecoverOpenEvent(ctx context.Context, e *EventEntry) (bool, error) {
	happened, user, data, err := s.openEventOutcome(ctx, e)
	if err != nil || happened == outcomeUnknown {
		return false, err
	}
	st := settlement{Entry: e.ID, Outcome: settledSealed, UserID: user, Data: data, Recovered: true}
	if happened == outcomeNo {
		st = settlement{Entry: e.ID, Outcome: settledVoid}
	}
	// The change's own seal or drop may have taken the settlement (and
	// perhaps died before writing a void one into the entry): what was
	// decided holds.
	got, err := s.takeSettlement(ctx, st)
	if err != nil {
		return false, err
	}
	if got.Outcome == settledVoid {
		if err := s.voidEntry(ctx, e.ID); err != nil {
			return false, err
		}
	}
	return true, nil
}

type outcome int

const (
	outcomeNo outcome = iota
	outcomeYes
	outcomeUnknown // not yet: look again later
)

// openEventOutcome tells from the data whether e's change happened, with
// the user and data learnt on the way.
func (s *Store) openEventOutcome(ctx context.Context, e *EventEntry) (outcome, int64, map[string]any, error) {
	yes := func(b bool) outcome {
		if b {
			return outcomeYes
		}
		return outcomeNo
	}
	switch v1alpha1.EventType(e.Event) {
	case v1alpha1.EventUserLogin:
		ok, err := s.exists(ctx, ColSessions, bson.D{{Key: "_id", Value: e.Ref}})
		return yes(ok), 0, nil, err
	case v1alpha1.EventWalletTransaction:
		le, err := s.entryByKey(ctx, e.Ref)
		if errors.Is(err, ErrNotFound) {
			return outcomeNo, 0, nil, nil
		}
		if err != nil {
			return outcomeUnknown, 0, nil, err
		}
		if !le.Final() && le.State != StateRefused {
			return outcomeUnknown, 0, nil, nil // the ledger's own recovery finishes it first
		}
		if le.State != StateCompleted {
			return outcomeNo, 0, nil, nil
		}
		return outcomeYes, 0, ledgerEventData(le), nil
	}
	if e.Event == string(v1alpha1.EventUserCreated) || e.Ref != "" {
		// A creation, found by the mark it left on the profile, or an
		// import's record, by its natural key.
		filter := bson.D{{Key: FieldCreatedEvent, Value: e.ID}}
		if e.Ref != "" {
			filter = bson.D{{Key: FieldImportSource, Value: e.Ref}}
		}
		var p struct {
			ID int64 `bson:"_id"`
		}
		octx, cancel := s.opContext(ctx)
		defer cancel()
		err := classify(decodeOne(s.col(ColProfiles).FindOne(octx, filter), &p))
		if errors.Is(err, ErrNotFound) {
			return outcomeNo, 0, nil, nil
		}
		if err != nil {
			return outcomeUnknown, 0, nil, err
		}
		return outcomeYes, p.ID, nil, nil
	}
	if e.UserID == 0 { // an import's record the batch did not reach
		return outcomeNo, 0, nil, nil
	}
	p, err := s.rawProfile(ctx, e.UserID)
	gone := errors.Is(err, ErrNotFound)
	if err != nil && !gone {
		return outcomeUnknown, 0, nil, err
	}
	if e.Event == string(v1alpha1.EventUserDeleted) {
		return yes(gone || p.Tombstone != nil), 0, nil, nil
	}
	// A profile change bumps updated_at (second precision) to at least the
	// entry's time; a profile not written since cannot have changed.
	return yes(!gone && !p.Updated.Before(e.CreatedAt.Truncate(1e9))), 0, nil, nil
}
