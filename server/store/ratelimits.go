package store

import (
	"context"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColRateLimits holds fixed-window counters, one document per key and
// window ("login-fail:ip:10.0.0.1|1767225600"), shared by all replicas.
const ColRateLimits = "ratelimits"

func init() {
	RegisterIndexes(IndexSpec{Collection: ColRateLimits, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}})
}

// RateWindow is one key's counter in the current window.
type RateWindow struct {
	Count int64
	Reset time.Time // when the window ends
}

// RetryAfter is the time until the window resets (at least one second).
func (w RateWindow) RetryAfter(now time.Time) time.Duration {
	return max(w.Reset.Sub(now), time.Second)
}

func (s *Store) windowID(key string, window time.Duration) (string, time.Time) {
	start := s.Now().Truncate(window)
	return key + "|" + strconv.FormatInt(start.Unix(), 10), start.Add(window)
}

// HitRateLimit counts one event for key in the current fixed window and
// returns the count including it. The count is one findAndModify upsert
// with $inc, atomic across replicas.
func (s *Store) HitRateLimit(ctx context.Context, key string, window time.Duration) (RateWindow, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	id, reset := s.windowID(key, window)
	var doc struct {
		Count int64 `bson:"count"`
	}
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	for attempt := 0; ; attempt++ {
		err := s.col(ColRateLimits).FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: id}},
			bson.D{
				{Key: "$inc", Value: bson.D{{Key: "count", Value: int64(1)}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "expires_at", Value: reset}}},
			}, opts).Decode(&doc)
		if err == nil {
			s.maybeSweep(ctx, ColRateLimits, "expires_at")
			return RateWindow{Count: doc.Count, Reset: reset}, nil
		}
		// Two first hits may both insert; the loser increments the winner's.
		if mongo.IsDuplicateKeyError(err) && attempt < 3 {
			continue
		}
		return RateWindow{}, classify(err)
	}
}

// PeekRateLimit is the current window's count without counting.
func (s *Store) PeekRateLimit(ctx context.Context, key string, window time.Duration) (RateWindow, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	id, reset := s.windowID(key, window)
	var doc struct {
		Count int64 `bson:"count"`
	}
	err := s.col(ColRateLimits).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if err != nil && err != mongo.ErrNoDocuments {
		return RateWindow{}, classify(err)
	}
	return RateWindow{Count: doc.Count, Reset: reset}, nil
}

// ResetRateLimit clears key's current window (e.g. failures after a
// successful login).
func (s *Store) ResetRateLimit(ctx context.Context, key string, window time.Duration) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	id, _ := s.windowID(key, window)
	_, err := s.col(ColRateLimits).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return classify(err)
}
