package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColLoginHistory keeps login attempts on known accounts for the admin's
// login history (docs/server.md), each until its expires_at (the tenant's
// spec.api.plus.loginHistory after it): reads skip expired entries and a
// sweep now and then deletes them (no TTL index on FerretDB).
const ColLoginHistory = "login_history"

// MaxLoginsListed bounds one login history answer (newest first).
const MaxLoginsListed = 100

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColLoginHistory, Name: "user_at", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "at", Value: -1}}},
		IndexSpec{Collection: ColLoginHistory, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}},
	)
	RegisterUserCleanup(deleteLoginHistory)
}

// LoginRecord is one login attempt.
type LoginRecord struct {
	UserID    int64     `bson:"user_id"`
	At        time.Time `bson:"at"`
	API       string    `bson:"api"`
	Method    string    `bson:"method"`
	Address   string    `bson:"address"`
	Result    string    `bson:"result"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// RecordLogin keeps rec.
func (s *Store) RecordLogin(ctx context.Context, rec LoginRecord) error {
	err := s.insert(ctx, ColLoginHistory, rec)
	if err == nil {
		s.maybeSweep(ctx, ColLoginHistory, "expires_at")
	}
	return err
}

// LoginHistory is user userID's unexpired login attempts, newest first
// (within one second by _id, whose ObjectID counts up per process; at
// most MaxLoginsListed).
func (s *Store) LoginHistory(ctx context.Context, userID int64) ([]LoginRecord, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColLoginHistory).Find(ctx,
		bson.D{{Key: "user_id", Value: userID}, {Key: "expires_at", Value: bson.D{{Key: "$gt", Value: s.Now()}}}},
		options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(MaxLoginsListed))
	if err != nil {
		return nil, classify(err)
	}
	out := []LoginRecord{}
	if err := decodeAll(ctx, cur, &out); err != nil {
		return nil, classify(err)
	}
	for i := range out {
		out[i].At, out[i].ExpiresAt = out[i].At.UTC(), out[i].ExpiresAt.UTC()
	}
	return out, nil
}

func deleteLoginHistory(ctx context.Context, s *Store, userID int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColLoginHistory).DeleteMany(ctx, bson.D{{Key: "user_id", Value: userID}})
	return classify(err)
}
