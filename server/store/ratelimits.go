package store

import (
	"context"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ColRateLimits holds fixed-window rate limit counters shared by all
// replicas. A window's count is a set of slot documents, _id
// "<key>|<window start>|<n>": taking a slot is an insert under the unique
// _id, so two replicas can never both take the last one. (A findAndModify
// {$inc} counter would be simpler, but FerretDB applies $inc as an
// unisolated read-modify-write and loses counts under concurrency.)
//
// A slot can be given back (a login that succeeded, a code that was not
// sent after all): that inserts a release document "<slot id>|release",
// also under a unique _id, so one slot is given back at most once. A window
// admits slot numbers up to limit + releases, so slots taken minus slots
// given back never exceeds limit, however the requests interleave:
// releases only ever grow, and every taker reads them before choosing n.
const ColRateLimits = "ratelimits"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColRateLimits, Name: "key_window", Keys: bson.D{{Key: "key", Value: 1}, {Key: "window", Value: 1}}},
		IndexSpec{Collection: ColRateLimits, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}},
	)
}

// RateWindow is one key's count in the current window.
type RateWindow struct {
	Count int64
	Reset time.Time // when the window ends
}

// RetryAfter is the time until the window resets (at least one second).
func (w RateWindow) RetryAfter(now time.Time) time.Duration {
	return max(w.Reset.Sub(now), time.Second)
}

// RateSlot is a slot taken by TakeRateSlot, the handle to give it back.
type RateSlot struct {
	id, key, window string
	expires         time.Time
}

func (s *Store) window(key string, window time.Duration) (string, time.Time) {
	start := s.Now().Truncate(window)
	return key + "|" + strconv.FormatInt(start.Unix(), 10), start.Add(window)
}

// windowCounts is the number of slot documents and of release documents in
// the window.
func (s *Store) windowCounts(ctx context.Context, key, win string) (slots, released int64, err error) {
	all, err := s.col(ColRateLimits).CountDocuments(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}})
	if err != nil {
		return 0, 0, classify(err)
	}
	if all == 0 {
		return 0, 0, nil
	}
	released, err = s.col(ColRateLimits).CountDocuments(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}, {Key: "release", Value: true}})
	if err != nil {
		return 0, 0, classify(err)
	}
	return all - released, released, nil
}

// TakeRateSlot takes one of the limit slots of key's current fixed window,
// or reports (false) that all are taken. Callers take the slot BEFORE the
// work it limits (a password check, a code sent), so that parallel requests
// cannot all pass a check made before any of them was counted. The window
// it returns counts this event (a refusal: limit+1).
func (s *Store) TakeRateSlot(ctx context.Context, key string, window time.Duration, limit int64) (RateSlot, RateWindow, bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	win, reset := s.window(key, window)
	slots, released, err := s.windowCounts(ctx, key, win)
	if err != nil {
		return RateSlot{}, RateWindow{}, false, err
	}
	for n := slots + 1; n <= limit+released; n++ {
		id := win + "|" + strconv.FormatInt(n, 10)
		_, err := s.col(ColRateLimits).InsertOne(ctx, bson.D{
			{Key: "_id", Value: id}, {Key: "key", Value: key}, {Key: "window", Value: win}, {Key: "expires_at", Value: reset},
		})
		if err == nil {
			s.maybeSweep(ctx, ColRateLimits, "expires_at")
			return RateSlot{id: id, key: key, window: win, expires: reset},
				RateWindow{Count: n - released, Reset: reset}, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return RateSlot{}, RateWindow{}, false, classify(err)
		}
		// Slot n was taken meanwhile: try the next one.
	}
	return RateSlot{}, RateWindow{Count: limit + 1, Reset: reset}, false, nil
}

// ReleaseRateSlot gives a slot back, so that it does not count. Releasing a
// zero slot or one twice does nothing.
func (s *Store) ReleaseRateSlot(ctx context.Context, slot RateSlot) error {
	if slot.id == "" {
		return nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColRateLimits).InsertOne(ctx, bson.D{
		{Key: "_id", Value: slot.id + "|release"}, {Key: "key", Value: slot.key}, {Key: "window", Value: slot.window},
		{Key: "release", Value: true}, {Key: "expires_at", Value: slot.expires},
	})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return classify(err)
	}
	return nil
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
	slots, released, err := s.windowCounts(ctx, key, win)
	if err != nil {
		return RateWindow{}, err
	}
	return RateWindow{Count: slots - released, Reset: reset}, nil
}

// ResetRateLimit clears key's current window (e.g. failures after a
// successful login). A key is either reset or has slots released, never
// both: a release landing after a reset would credit a slot that no longer
// counts.
func (s *Store) ResetRateLimit(ctx context.Context, key string, window time.Duration) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	win, _ := s.window(key, window)
	_, err := s.col(ColRateLimits).DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}})
	return classify(err)
}
