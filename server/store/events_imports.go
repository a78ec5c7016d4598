package store

import (
	"context"

	"userve.dev/userve/api/v1alpha1"
)

// Events of an import batch: one entry a record, written ahead of the batch
// under the record's natural key (its import source), since whether a
// record creates, updates or skips a user is known only afterwards.

// beginImportEvents opens one entry per record when the tenant subscribes
// to user.created or user.updated (nil otherwise).
func (s *Store) beginImportEvents(ctx context.Context, users []ImportUser) ([]*openEvent, error) {
	t := v1alpha1.EventUserCreated
	if !s.events[t] {
		t = v1alpha1.EventUserUpdated
	}
	if !s.events[t] {
		return nil, nil
	}
	evs := make([]*openEvent, len(users))
	for i := range users {
		ev, err := s.beginEvent(ctx, t, 0, users[i].Source(), map[string]any{"source": "import"})
		if err != nil {
			for _, o := range evs[:i] {
				o.drop(ctx)
			}
			return nil, err
		}
		evs[i] = ev
	}
	return evs, nil
}

// settleImportEvents seals the entries of created and updated records as
// such, and drops the others'. Entries of a batch that failed half-way
// stay open: recovery finds the record's user by its source, or drops
// them (events_recover.go).
func (s *Store) settleImportEvents(ctx context.Context, evs []*openEvent, results []ImportResult) {
	if evs == nil || ctx.Err() != nil {
		return
	}
	for i, r := range results {
		switch {
		case r.Status == "": // the batch stopped before this record: recovery judges it
		case r.Status == ImportCreated && s.events[v1alpha1.EventUserCreated]:
			evs[i].sealAs(ctx, v1alpha1.EventUserCreated, r.UserID, nil)
		case r.Status == ImportUpdated && s.events[v1alpha1.EventUserUpdated]:
			evs[i].sealAs(ctx, v1alpha1.EventUserUpdated, r.UserID, map[string]any{"fields": []string{}})
		default:
			evs[i].drop(ctx)
		}
	}
}
