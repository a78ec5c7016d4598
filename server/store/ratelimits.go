package store

import (
	"context"
	"crypto/rand"
	"errors"
	mathrand "math/rand/v2"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColRateLimits holds fixed-window rate limit counters shared by all
// replicas. A window's count is the set of its live slot documents, _id
// "<key>|<window start>|<n>" with n in 1..limit: taking a slot is an insert
// under the unique _id, so two replicas can never both take the last one,
// and a window never holds more than limit live slots however requests
// interleave. (A findAndModify {$inc} counter would be simpler, but
// FerretDB applies $inc as an unisolated read-modify-write and loses counts
// under concurrency.)
//
// A slot is given back (a login that succeeded, a code that was not sent
// after all) by deleting its document, matched by the random taker it
// carries, so a handle given back twice cannot free a slot someone else took
// since. The common case costs one round trip to take every slot a request
// needs (a random slot of each key, one unordered insert: parallel takers
// rarely pick the same) and one to give them back; only a pick that was
// taken pays a count and further inserts.
//
// The scheme before this one gave a slot back with a release document
// "<slot id>|release" instead; counts subtract those (liveSlots), so a
// rolling upgrade neither loosens nor wedges a limit.
const ColRateLimits = "ratelimits"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColRateLimits, Name: "key_window", Keys: bson.D{{Key: "key", Value: 1}, {Key: "window", Value: 1}}},
		IndexSpec{Collection: ColRateLimits, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}},
	)
}

// RateWindow is one key's count in the current window.
type RateWindow struct {
	// Count is, for a refusal, limit+1; for an admitted take, the number
	// of the slot taken; for a peek, the live count.
	Count int64
	Reset time.Time // when the window ends
}

// RetryAfter is the time until the window resets (at least one second).
func (w RateWindow) RetryAfter(now time.Time) time.Duration {
	return max(w.Reset.Sub(now), time.Second)
}

// RateSlot is a slot taken by TakeRateSlot, the handle to give it back.
type RateSlot struct {
	id, taker, key, window string
	number                 int64
	expires                time.Time
}

// RateClaim asks for one slot of Key's current window of length Window,
// which has Limit slots.
type RateClaim struct {
	Key    string
	Window time.Duration
	Limit  int64
}

// RateTake is what a claim got: a slot (Admitted) or a refusal.
type RateTake struct {
	Slot     RateSlot
	Window   RateWindow
	Admitted bool
}

func (s *Store) window(key string, window time.Duration) (string, time.Time) {
	start := s.Now().Truncate(window)
	return key + "|" + strconv.FormatInt(start.Unix(), 10), start.Add(window)
}

// liveSlots counts a key's live slots in a window. Slots of the scheme
// before this one are given back by a release document each rather than
// deleted: they count as the slot documents minus the release documents
// (released), so replicas of both schemes agree during an upgrade.
func (s *Store) liveSlots(ctx context.Context, key, win string) (live, released int64, err error) {
	all, err := s.col(ColRateLimits).CountDocuments(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}})
	if err != nil || all == 0 {
		return 0, 0, classify(err)
	}
	released, err = s.col(ColRateLimits).CountDocuments(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}, {Key: "release", Value: true}})
	if err != nil {
		return 0, 0, classify(err)
	}
	return all - 2*released, released, nil
}

func slotDocument(slot RateSlot, n int64) (bson.D, RateSlot) {
	slot.id, slot.number = slot.window+"|"+strconv.FormatInt(n, 10), n
	return bson.D{{Key: "_id", Value: slot.id}, {Key: "key", Value: slot.key}, {Key: "window", Value: slot.window},
		{Key: "taker", Value: slot.taker}, {Key: "expires_at", Value: slot.expires}}, slot
}

// TakeRateSlot takes one of the limit slots of key's current fixed window,
// or reports (false) that all are taken. Callers take the slot BEFORE the
// work it limits (a password check, a code sent), so that parallel requests
// cannot all pass a check made before any of them was counted.
func (s *Store) TakeRateSlot(ctx context.Context, key string, window time.Duration, limit int64) (RateSlot, RateWindow, bool, error) {
	takes, err := s.TakeRateSlots(ctx, RateClaim{Key: key, Window: window, Limit: limit})
	if err != nil {
		return RateSlot{}, RateWindow{}, false, err
	}
	return takes[0].Slot, takes[0].Window, takes[0].Admitted, nil
}

// TakeRateSlots takes a slot of every claim, in one round trip when their
// keys have no live slots. The claims are judged in order: it returns the
// takes up to the first refusal, included, and gives back the slots the
// claims after it took, as if they had never been asked for (the slots
// before it stay taken, like TakeRateSlot one after the other).
func (s *Store) TakeRateSlots(ctx context.Context, claims ...RateClaim) ([]RateTake, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	takes := make([]RateTake, len(claims))
	var docs []any
	var tried []int // docs[k] is slot 1 of claims[tried[k]]
	for i, c := range claims {
		win, reset := s.window(c.Key, c.Window)
		takes[i].Slot = RateSlot{taker: rand.Text(), key: c.Key, window: win, expires: reset}
		takes[i].Window = RateWindow{Count: c.Limit + 1, Reset: reset}
		if c.Limit >= 1 {
			doc, slot := slotDocument(takes[i].Slot, 1+mathrand.Int64N(c.Limit))
			takes[i].Slot = slot
			docs, tried = append(docs, doc), append(tried, i)
		}
	}
	taken := make([]bool, len(claims))
	if len(docs) > 0 {
		_, err := s.col(ColRateLimits).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		for _, i := range tried {
			taken[i] = true
		}
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
				return nil, classify(err)
			}
			for _, we := range bwe.WriteErrors {
				if !mongo.IsDuplicateKeyError(we) && !uniqueViolation(we) {
					return nil, classify(err)
				}
				taken[tried[we.Index]] = false
			}
		}
	}
	for i, c := range claims {
		switch {
		case taken[i]:
			takes[i].Window.Count, takes[i].Admitted = takes[i].Slot.number, true
		case c.Limit >= 1:
			takes[i].Slot.id = ""
			if err := s.takeLaterSlot(ctx, c.Limit, &takes[i]); err != nil {
				return nil, err
			}
		}
		if !takes[i].Admitted {
			var later []RateSlot
			for j := i + 1; j < len(claims); j++ {
				if taken[j] {
					later = append(later, takes[j].Slot)
				}
			}
			if err := s.GiveBackRateSlots(context.WithoutCancel(ctx), later, nil); err != nil {
				s.log.Warn("giving back rate-limit slots after a refusal failed", "error", err)
			}
			return takes[:i+1], nil
		}
	}
	s.maybeSweep(ctx, ColRateLimits, "expires_at")
	return takes, nil
}

// takeLaterSlot takes a free slot of a key whose first pick was taken:
// unless the live count says none is free, it tries every number once,
// from above the slot documents there are (where a free one is likeliest).
// Numbers go up to limit plus the release documents of the scheme before,
// whose given-back slots keep their numbers.
func (s *Store) takeLaterSlot(ctx context.Context, limit int64, t *RateTake) error {
	live, released, err := s.liveSlots(ctx, t.Slot.key, t.Slot.window)
	if err != nil {
		return err
	}
	if live >= limit {
		return nil
	}
	numbers := limit + released
	for k := range numbers {
		n := (live+released+k)%numbers + 1
		doc, slot := slotDocument(t.Slot, n)
		_, err := s.col(ColRateLimits).InsertOne(ctx, doc)
		if err == nil {
			t.Slot, t.Window.Count, t.Admitted = slot, n, true
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) && !uniqueViolation(err) {
			return classify(err)
		}
	}
	return nil
}

// ReleaseRateSlot gives a slot back, so that it does not count. Releasing a
// zero slot or one twice does nothing.
func (s *Store) ReleaseRateSlot(ctx context.Context, slot RateSlot) error {
	return s.GiveBackRateSlots(ctx, []RateSlot{slot}, nil)
}

// GiveBackRateSlots gives slots back and clears the whole current window of
// the key of every slot in clear (e.g. an account's failures from an address
// after it logged in from there), in one round trip. Zero slots and slots
// given back already are ignored.
func (s *Store) GiveBackRateSlots(ctx context.Context, giveBack, clear []RateSlot) error {
	var or bson.A
	for _, sl := range giveBack {
		if sl.id != "" {
			or = append(or, bson.D{{Key: "_id", Value: sl.id}, {Key: "taker", Value: sl.taker}})
		}
	}
	for _, sl := range clear {
		if sl.key != "" {
			or = append(or, bson.D{{Key: "key", Value: sl.key}, {Key: "window", Value: sl.window}})
		}
	}
	if len(or) == 0 {
		return nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColRateLimits).DeleteMany(ctx, bson.D{{Key: "$or", Value: or}})
	return classify(err)
}

// HitRateLimit counts one event for key in the current fixed window unless
// the window already holds limit events. It returns the count including this
// event, and whether it was admitted (Count <= limit).
func (s *Store) HitRateLimit(ctx context.Context, key string, window time.Duration, limit int64) (RateWindow, bool, error) {
	_, w, ok, err := s.TakeRateSlot(ctx, key, window, limit)
	return w, ok, err
}

// PeekRateLimit is the current window's count without counting.
func (s *Store) PeekRateLimit(ctx context.Context, key string, window time.Duration) (RateWindow, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	win, reset := s.window(key, window)
	live, _, err := s.liveSlots(ctx, key, win)
	if err != nil {
		return RateWindow{}, err
	}
	return RateWindow{Count: live, Reset: reset}, nil
}

// ResetRateLimit clears key's current window (e.g. failures after a
// successful login).
func (s *Store) ResetRateLimit(ctx context.Context, key string, window time.Duration) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	win, _ := s.window(key, window)
	_, err := s.col(ColRateLimits).DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}})
	return classify(err)
}
