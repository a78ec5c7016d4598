package store

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/mongofixture"
)

func openEvents(t *testing.T) (*Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := Open(ctx, mongofixture.URI(t), mongofixture.NewDatabase(t).Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	s.SetEvents(v1alpha1.EventTypes()...)
	return s, ctx
}

func mustBegin(t *testing.T, s *Store, ctx context.Context, typ v1alpha1.EventType, user int64, ref string) *openEvent {
	t.Helper()
	ev, err := s.beginEvent(ctx, typ, user, ref, nil)
	if err != nil || ev == nil {
		t.Fatalf("beginEvent %s: %v", typ, err)
	}
	return ev
}

func eventState(t *testing.T, s *Store, ctx context.Context, id int64) EventEntry {
	t.Helper()
	var e EventEntry
	if err := decodeOne(s.col(ColEvents).FindOne(ctx, bson.D{{Key: "_id", Value: id}}), &e); err != nil {
		t.Fatalf("entry %d: %v", id, err)
	}
	entries := []EventEntry{e}
	if err := s.settledView(ctx, entries); err != nil {
		t.Fatal(err)
	}
	return entries[0] // as its settlement decided
}

// A process that dies between a change and its event's seal leaves the
// entry open; recovery reads the data: each change that happened is
// delivered (recovered), each that did not is voided. The changes here are
// made by the store's own writes without the seal, as a crash leaves them.
func TestOpenEventsAreSettledFromTheData(t *testing.T) {
	s, ctx := openEvents(t)
	old := s.Now().Add(-time.Hour)
	mk := func(id int64) {
		if err := s.insert(ctx, ColProfiles, &Profile{ID: id, Nickname: "u", Groups: []int64{}, Created: old, Updated: old}); err != nil {
			t.Fatal(err)
		}
	}
	mk(1)
	mk(2)
	mk(3)
	mk(4)

	type want struct {
		ev   *openEvent
		name string
		yes  bool
	}
	var cases []want
	add := func(name string, yes bool, ev *openEvent) { cases = append(cases, want{ev, name, yes}) }

	ev := mustBegin(t, s, ctx, v1alpha1.EventUserLogin, 1, "session-1")
	if err := s.insert(ctx, ColSessions, &Session{ID: "session-1", UserID: 1}); err != nil {
		t.Fatal(err)
	}
	add("login whose session exists", true, ev)
	add("login without its session", false, mustBegin(t, s, ctx, v1alpha1.EventUserLogin, 1, "session-2"))

	ev = mustBegin(t, s, ctx, v1alpha1.EventUserCreated, 0, "")
	if err := s.insert(ctx, ColProfiles, &Profile{ID: 10, Groups: []int64{}, Created: old, Updated: old, CreatedEvent: ev.e.ID}); err != nil {
		t.Fatal(err)
	}
	add("creation whose profile exists", true, ev)
	add("creation that never inserted", false, mustBegin(t, s, ctx, v1alpha1.EventUserCreated, 0, ""))

	ev = mustBegin(t, s, ctx, v1alpha1.EventUserUpdated, 2, "")
	if _, err := s.applyProfileUpdate(ctx, 2, bson.D{{Key: "$set", Value: bson.D{{Key: FieldNickname, Value: "v"}, {Key: FieldUpdatedAt, Value: s.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	add("update written", true, ev)
	add("update never written", false, mustBegin(t, s, ctx, v1alpha1.EventUserUpdated, 3, ""))

	ev = mustBegin(t, s, ctx, v1alpha1.EventUserDeleted, 4, "")
	if err := s.buryUser(ctx, 4, TombstoneDeleted); err != nil {
		t.Fatal(err)
	}
	add("deletion under way", true, ev)
	add("deletion never started", false, mustBegin(t, s, ctx, v1alpha1.EventUserDeleted, 3, ""))

	s.SetEvents() // the adjust itself announces nothing here
	le, _, err := s.Adjust(ctx, AdjustRequest{UserID: 2, Account: "new_wallet", Amount: 7, Key: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	s.SetEvents(v1alpha1.EventTypes()...)
	add("wallet entry completed", true, mustBegin(t, s, ctx, v1alpha1.EventWalletTransaction, 2, le.Key))
	add("wallet entry never inserted", false, mustBegin(t, s, ctx, v1alpha1.EventWalletTransaction, 2, "adjust:k2"))

	_, stale, err := s.DueEvents(ctx, 0, 64)
	if err != nil || len(stale) != len(cases) {
		t.Fatalf("%d stale entries (%v), want %d", len(stale), err, len(cases))
	}
	for i := range stale {
		if settled, err := s.RecoverOpenEvent(ctx, &stale[i]); err != nil || !settled {
			t.Fatalf("recovering %d: %v %v", stale[i].ID, settled, err)
		}
	}
	for _, c := range cases {
		e := eventState(t, s, ctx, c.ev.e.ID)
		switch {
		case c.yes && (e.State != EventPending || !e.Recovered):
			t.Errorf("%s: %s (recovered %v), want pending, recovered", c.name, e.State, e.Recovered)
		case !c.yes && e.State != EventVoid:
			t.Errorf("%s: %s, want void", c.name, e.State)
		}
	}
	if e := eventState(t, s, ctx, cases[2].ev.e.ID); e.UserID != 10 {
		t.Errorf("the recovered creation names user %d, want 10", e.UserID)
	}
	if e := eventState(t, s, ctx, cases[8].ev.e.ID); e.Data["amount"] != int64(7) || e.Data["state"] != StateCompleted {
		t.Errorf("the recovered wallet event's data %v", e.Data)
	}
	// A void entry's change that was only slow writes its event anew when
	// it seals; the void entry stays void.
	cases[3].ev.seal(ctx, 11, nil)
	if e := eventState(t, s, ctx, cases[3].ev.e.ID); e.State != EventVoid {
		t.Fatalf("the void entry became %s", e.State)
	}
	n, err := s.col(ColEvents).CountDocuments(ctx, bson.D{{Key: "state", Value: EventPending}, {Key: "user_id", Value: int64(11)}, {Key: "event", Value: "user.created"}})
	// (Written anew as pending: a re-emitted event needs no settlement.)
	if err != nil || n != 1 {
		t.Fatalf("%d events written anew for the slow creation (%v), want 1", n, err)
	}
}

// 30 parallel settlements of one open entry (the change's seal and
// recoveries on several replicas): exactly one decides, and the entry ends
// as it decided.
func TestAnOpenEventIsSettledOnce(t *testing.T) {
	s, ctx := openEvents(t)
	ev := mustBegin(t, s, ctx, v1alpha1.EventUserLogin, 1, "session-x")
	const n = 30
	outcomes := make(chan string, n)
	for i := range n {
		go func(i int) {
			want := settledVoid
			if i%2 == 0 {
				want = settledSealed
			}
			got, err := s.takeSettlement(ctx, settlement{Entry: ev.e.ID, Outcome: want})
			if err != nil {
				t.Error(err)
				outcomes <- ""
				return
			}
			outcomes <- got.Outcome
		}(i)
	}
	first := <-outcomes
	for range n - 1 {
		if o := <-outcomes; o != first {
			t.Fatalf("settlements %q and %q of one entry", first, o)
		}
	}
}
