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
// "<key>|<window start>|<n>", n = 1..limit: taking a slot is an insert under
// the unique _id, so two replicas can never both take the last one. (A
// findAndModify {$inc} counter would be simpler, but FerretDB applies $inc
// as an unisolated read-modify-write and loses counts under concurrency.)
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

func (s *Store) window(key string, window time.Duration) (string, time.Time) {
	start := s.Now().Truncate(window)
	return key + "|" + strconv.FormatInt(start.Unix(), 10), start.Add(window)
}

// HitRateLimit counts one event for key in the current fixed window unless
// the window already holds limit events. It returns the count including this
// event, and whether it was admitted (Count <= limit).
func (s *Store) HitRateLimit(ctx context.Context, key string, window time.Duration, limit int64) (RateWindow, bool, error) {
	w, err := s.PeekRateLimit(ctx, key, window)
	if err != nil {
		return w, false, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	win, reset := s.window(key, window)
	for n := w.Count + 1; n <= limit; n++ {
		_, err := s.col(ColRateLimits).InsertOne(ctx, bson.D{
			{Key: "_id", Value: win + "|" + strconv.FormatInt(n, 10)},
			{Key: "key", Value: key}, {Key: "window", Value: win}, {Key: "expires_at", Value: reset},
		})
		if err == nil {
			s.maybeSweep(ctx, ColRateLimits, "expires_at")
			return RateWindow{Count: n, Reset: reset}, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return w, false, classify(err)
		}
		// Slot n was taken meanwhile: try the next one.
	}
	return RateWindow{Count: limit + 1, Reset: reset}, false, nil
}

// PeekRateLimit is the current window's count without counting.
func (s *Store) PeekRateLimit(ctx context.Context, key string, window time.Duration) (RateWindow, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	win, reset := s.window(key, window)
	n, err := s.col(ColRateLimits).CountDocuments(ctx, bson.D{{Key: "key", Value: key}, {Key: "window", Value: win}})
	if err != nil {
		return RateWindow{}, classify(err)
	}
	return RateWindow{Count: n, Reset: reset}, nil
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
