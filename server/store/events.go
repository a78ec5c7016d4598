package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
)

// The event outbox (docs/events.md): every change that makes an event
// writes the event into ColEvents, in the tenant's database, BEFORE the
// change runs (state open), like the audit log's pending entry. After the
// change the entry is sealed (pending: to deliver) or, when the change was
// refused, dropped. A process that dies between the two leaves an open
// entry; once it is older than the recovery grace, the delivery worker
// settles it by looking at the data (events_recover.go): a change that
// shows (the session exists, the ledger entry completed, the profile was
// written since) is delivered, marked recovered; one that does not is
// voided. So a crash can never lose an event; at worst a change whose
// outcome cannot be told (a profile edit cut off after a later write) is
// announced once too often.
//
// Events are emitted here, in the store, because every path that changes
// a user (three dialects, imports, merges, the WeChat login) goes through
// these methods; the dialects cannot forget one.

// Outbox collections: the entries, and one document per claim (the unique
// _id decides which replica delivers an entry; see events_outbox.go).
const (
	ColEvents      = "event_outbox"
	ColEventClaims = "event_claims"
)

// Outbox entry states.
const (
	EventOpen      = "open"      // written before its change; outcome not known yet
	EventPending   = "pending"   // to deliver (waiting for its turn or a retry)
	EventDelivered = "delivered" // the receiver answered 2xx
	EventDead      = "dead"      // undelivered for DeadAfter: no more retries
	// EventVoid is an open entry recovery judged never applied. It is kept
	// (not deleted), so its id is never given to another event and a
	// change that was only slow finds out when it seals (reemit).
	EventVoid = "void"
)

// FieldCreatedEvent marks a profile with the outbox entry of its creation,
// so that recovery can tell whether an interrupted creation happened.
const FieldCreatedEvent = "created_event"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColEvents, Name: "state_id", Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}},
		IndexSpec{Collection: ColEvents, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "_id", Value: 1}}},
		IndexSpec{Collection: ColEvents, Name: "event_id", Keys: bson.D{{Key: "event", Value: 1}, {Key: "_id", Value: 1}}},
		IndexSpec{Collection: ColEventClaims, Name: "entry", Keys: bson.D{{Key: "entry", Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: FieldCreatedEvent, Keys: bson.D{{Key: FieldCreatedEvent, Value: 1}}},
	)
}

// EventEntry is one event in the outbox, with its delivery state and log.
type EventEntry struct {
	// ID orders the outbox (a sequence, so "earlier" means the same on
	// every replica) and is the id receivers dedupe on.
	ID     int64          `bson:"_id"`
	Event  string         `bson:"event"`
	UserID int64          `bson:"user_id"` // 0 until a creation's user is known
	State  string         `bson:"state"`
	Data   map[string]any `bson:"data"`
	// Ref is what recovery checks an open entry against: a session id, a
	// ledger idempotency key.
	Ref       string    `bson:"ref,omitempty"`
	Recovered bool      `bson:"recovered,omitempty"`
	CreatedAt time.Time `bson:"created_at"`
	// RetryFrom starts the dead-letter clock: the creation, or the last
	// manual retry of a dead entry.
	RetryFrom time.Time `bson:"retry_from"`

	NextAt     time.Time `bson:"next_at"` // no attempt before
	Claims     int64     `bson:"claims"`  // claims so far (the claim documents' serial)
	LeaseOwner string    `bson:"lease_owner,omitempty"`
	LeaseUntil time.Time `bson:"lease_until"`

	Attempts    int64             `bson:"attempts"`
	LastStatus  int               `bson:"last_status,omitempty"`
	LastError   string            `bson:"last_error,omitempty"`
	DeliveredAt *time.Time        `bson:"delivered_at,omitempty"`
	DeadAt      *time.Time        `bson:"dead_at,omitempty"`
	Log         []DeliveryAttempt `bson:"log"` // the last MaxDeliveryLog attempts

	settled bool // an open entry with a settlement (settledView)
}

// DeliveryAttempt is one POST of an event.
type DeliveryAttempt struct {
	At         time.Time `bson:"at"`
	DurationMS int64     `bson:"duration_ms"`
	Status     int       `bson:"status,omitempty"` // 0: no answer
	Error      string    `bson:"error,omitempty"`
}

// MaxDeliveryLog bounds the attempts an entry keeps (Attempts counts all).
const MaxDeliveryLog = 20

// SetEvents records the event types the tenant subscribes to (none: no
// outbox writes at all). Call it before the store serves requests.
func (s *Store) SetEvents(types ...v1alpha1.EventType) {
	events := map[v1alpha1.EventType]bool{}
	for _, t := range types {
		events[t] = true
	}
	s.events = events
}

// Clock is the outbox's time: the store's clock at milliseconds (what
// BSON keeps), since retries and leases are shorter than the profiles'
// second precision.
func (s *Store) Clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// openEvent is an outbox entry written ahead of its change; nil when the
// tenant does not subscribe to the type (every method is then a no-op).
type openEvent struct {
	s *Store
	e *EventEntry
}

// beginEvent writes t's entry (state open) before its change runs. An error
// means the change must not run: its event could be lost.
func (s *Store) beginEvent(ctx context.Context, t v1alpha1.EventType, user int64, ref string, data map[string]any) (*openEvent, error) {
	if !s.events[t] {
		return nil, nil
	}
	if data == nil {
		data = map[string]any{}
	}
	now := s.Clock()
	e := &EventEntry{Event: string(t), UserID: user, State: EventOpen, Data: data, Ref: ref, CreatedAt: now, RetryFrom: now, NextAt: now,
		LeaseUntil: now, Log: []DeliveryAttempt{}}
	_, err := s.InsertWithNextID(ctx, ColEvents, ColEvents, func(id int64) any {
		e.ID = id
		return e
	})
	if err != nil {
		return nil, err
	}
	return &openEvent{s: s, e: e}, nil
}

// Settling an open entry: the change's seal or drop, or recovery, whoever
// comes first, and only one. FerretDB does not isolate concurrent updates
// of a document (a recovery voiding an entry and a slow change sealing it
// could both "win"), so the right to settle is an insert of
// "<id>:settle" into ColEventClaims. The settlement document is the
// decision: a sealed one carries what the change learnt (the user, the
// type, data) and makes the entry deliverable as it is, with no update of
// the entry (an update costs a collection scan on FerretDB, in the
// request's path); the first claim copies it into the entry. A void one
// is also written into the entry (rare: refused changes, recovery).
const (
	settledSealed = "sealed"
	settledVoid   = "void"
)

func settleKey(id int64) string { return fmt.Sprintf("%d:settle", id) }

// settlement is the document deciding an open entry.
type settlement struct {
	Key       string         `bson:"_id"`
	Entry     int64          `bson:"entry"`
	Outcome   string         `bson:"outcome"`
	Event     string         `bson:"event,omitempty"`
	UserID    int64          `bson:"user_id,omitempty"`
	Data      map[string]any `bson:"data,omitempty"`
	Recovered bool           `bson:"recovered,omitempty"`
	At        time.Time      `bson:"at"`
}

// apply shows entry e as the settlement decided it.
func (st *settlement) apply(e *EventEntry) {
	if st.Outcome == settledVoid {
		e.State = EventVoid
		return
	}
	e.State = EventPending
	if st.Event != "" {
		e.Event = st.Event
	}
	if st.UserID != 0 {
		e.UserID = st.UserID
	}
	if len(st.Data) > 0 {
		data := maps.Clone(e.Data)
		if data == nil {
			data = map[string]any{}
		}
		maps.Copy(data, st.Data)
		e.Data = data
	}
	e.Recovered = e.Recovered || st.Recovered
}

// takeSettlement records st as its entry's settlement unless one is
// recorded already; it returns the settlement in force.
func (s *Store) takeSettlement(ctx context.Context, st settlement) (*settlement, error) {
	st.Key, st.At = settleKey(st.Entry), s.Clock()
	err := s.insert(ctx, ColEventClaims, st)
	if err == nil || !errors.Is(err, ErrConflict) {
		return &st, err
	}
	var cur settlement
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if err := decodeOne(s.col(ColEventClaims).FindOne(octx, bson.D{{Key: "_id", Value: st.Key}}), &cur); err != nil {
		return nil, classify(err)
	}
	return &cur, nil
}

// settledView shows open entries as their settlements decided (one read of
// the settlements of the open ones).
func (s *Store) settledView(ctx context.Context, entries []EventEntry) error {
	var keys bson.A
	at := map[int64]int{}
	for i, e := range entries {
		if e.State == EventOpen {
			keys = append(keys, settleKey(e.ID))
			at[e.ID] = i
		}
	}
	if len(keys) == 0 {
		return nil
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColEventClaims).Find(octx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return classify(err)
	}
	var sts []settlement
	if err := decodeAll(octx, cur, &sts); err != nil {
		return classify(err)
	}
	for i := range sts {
		if j, ok := at[sts[i].Entry]; ok {
			sts[i].apply(&entries[j])
			entries[j].settled = true
		}
	}
	return nil
}

// voidEntry writes a void settlement into its entry.
func (s *Store) voidEntry(ctx context.Context, id int64) error {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColEvents).UpdateOne(octx, bson.D{{Key: "_id", Value: id}, {Key: "state", Value: EventOpen}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: EventVoid}}}})
	return classify(err)
}

// seal makes the entry deliverable, with the user and data learnt from the
// change. A failed seal leaves the entry open for recovery.
func (o *openEvent) seal(ctx context.Context, user int64, more map[string]any) {
	o.sealAs(ctx, "", user, more)
}

// sealAs is seal that also settles the event's type (t, unless empty): an
// import learns whether it created or updated a user only afterwards.
func (o *openEvent) sealAs(ctx context.Context, t v1alpha1.EventType, user int64, more map[string]any) {
	if o == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	st, err := o.s.takeSettlement(ctx, settlement{Entry: o.e.ID, Outcome: settledSealed, Event: string(t), UserID: user, Data: more})
	if err != nil {
		o.s.log.Warn("sealing an event failed; recovery delivers it later", "event", o.e.Event, "id", o.e.ID, "error", err)
		return
	}
	if st.Outcome == settledVoid {
		// Recovery judged the change never applied before it finished
		// (it was only slow): it did happen, and this process is alive, so
		// the event is written again.
		o.reemit(ctx, t, user, more)
		return
	}
	o.s.notifyEvents()
}

// reemit writes the event of a change anew, deliverable at once.
func (o *openEvent) reemit(ctx context.Context, t v1alpha1.EventType, user int64, more map[string]any) {
	e := *o.e
	if t != "" {
		e.Event = string(t)
	}
	if user != 0 {
		e.UserID = user
	}
	e.Data = maps.Clone(e.Data)
	maps.Copy(e.Data, more)
	now := o.s.Clock()
	e.State, e.CreatedAt, e.RetryFrom, e.NextAt, e.LeaseUntil = EventPending, now, now, now, now
	if _, err := o.s.InsertWithNextID(ctx, ColEvents, ColEvents, func(id int64) any {
		e.ID = id
		return &e
	}); err != nil {
		o.s.log.Error("an event judged void by recovery could not be written again: it is lost", "event", e.Event, "user", e.UserID, "error", err)
		return
	}
	o.s.notifyEvents()
}

// drop voids the entry of a change that was refused. The entry is kept
// (void), never deleted, so that its id is not given to another event.
func (o *openEvent) drop(ctx context.Context) {
	if o == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	st, err := o.s.takeSettlement(ctx, settlement{Entry: o.e.ID, Outcome: settledVoid})
	if err == nil && st.Outcome == settledVoid {
		err = o.s.voidEntry(ctx, o.e.ID)
	}
	if err != nil {
		o.s.log.Warn("voiding the event of a refused change failed; recovery settles it later", "event", o.e.Event, "id", o.e.ID, "error", err)
	}
}

// settle seals after a change that succeeded and drops after one that was
// refused; after a store failure the change may or may not have happened,
// so the entry stays open for recovery to judge.
func (o *openEvent) settle(ctx context.Context, err error) {
	switch {
	case o == nil:
	case err == nil:
		o.seal(ctx, 0, nil)
	case transient(err) || errors.Is(err, ErrUnavailable) || ctx.Err() != nil:
	default:
		o.drop(ctx)
	}
}

// NotifyEvents sets a function called after each sealed entry, so that a
// local worker delivers at once instead of at its next poll.
func (s *Store) NotifyEvents(f func()) { s.eventsNotify.Store(&f) }

func (s *Store) notifyEvents() {
	if f := s.eventsNotify.Load(); f != nil {
		(*f)()
	}
}

// profileEventFields are the document fields a profile update changes, as
// the user.updated event names them: the keys of its $set and $unset,
// without bookkeeping (updated_at, token_epoch) and secrets.
func profileEventFields(update bson.D) []string {
	fields := []string{}
	seen := map[string]bool{}
	for _, op := range update {
		if op.Key != "$set" && op.Key != "$unset" {
			continue
		}
		doc, _ := op.Value.(bson.D)
		for _, f := range doc {
			name := f.Key
			switch {
			case name == FieldUpdatedAt || name == "token_epoch" || name == "tombstone" || name == FieldCreatedEvent ||
				strings.Contains(name, "password"):
				continue
			case strings.HasPrefix(name, "ban"):
				name = "ban"
			}
			if !seen[name] {
				seen[name] = true
				fields = append(fields, name)
			}
		}
	}
	return fields
}

// updateProfileAs applies update to user id's profile with event t written
// ahead of it (user.updated names the changed fields).
func (s *Store) updateProfileAs(ctx context.Context, id int64, update bson.D, t v1alpha1.EventType, data map[string]any) (*Profile, error) {
	if !s.events[t] {
		return s.applyProfileUpdate(ctx, id, update)
	}
	if t == v1alpha1.EventUserUpdated {
		fields := profileEventFields(update)
		if len(fields) == 0 {
			return s.applyProfileUpdate(ctx, id, update) // a password alone: user.password_changed says it
		}
		data = map[string]any{"fields": fields}
	}
	ev, err := s.beginEvent(ctx, t, id, "", data)
	if err != nil {
		return nil, err
	}
	p, err := s.applyProfileUpdate(ctx, id, update)
	ev.settle(ctx, err)
	return p, err
}

// loginEventData is what user.login tells about a session.
func loginEventData(ss *Session) map[string]any {
	return map[string]any{"session_id": ss.ID, "method": ss.Method, "api": ss.API, "address": ss.Address}
}

// ledgerEventData is what wallet.transaction tells about a final entry.
func ledgerEventData(e *LedgerEntry) map[string]any {
	d := map[string]any{"transaction_id": e.ID, "kind": e.Kind, "account": string(e.Account), "amount": e.Amount,
		"title": e.Title, "state": e.State}
	if e.To != 0 {
		d["to_user_id"] = e.To
	}
	return d
}
