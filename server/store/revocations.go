package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ColRevocations lists revoked access tokens by their jti until they could
// no longer be used anyway (their refresh deadline). Every authenticated
// request looks here, so a logout holds on every replica at once.
const ColRevocations = "revocations"

func init() {
	RegisterIndexes(IndexSpec{Collection: ColRevocations, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}})
}

// RevokeToken records jti as revoked until `until`. It reports whether this
// call revoked it (false: it was revoked before), which makes token refresh
// single-use across replicas.
func (s *Store) RevokeToken(ctx context.Context, jti string, until time.Time) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColRevocations).InsertOne(ctx, bson.D{
		{Key: "_id", Value: jti}, {Key: "expires_at", Value: until.UTC()}, {Key: "revoked_at", Value: s.Now()},
	})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, classify(err)
	}
	s.maybeSweep(ctx, ColRevocations, "expires_at")
	return true, nil
}

// TokenRevoked reports whether jti was revoked.
func (s *Store) TokenRevoked(ctx context.Context, jti string) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	n, err := s.col(ColRevocations).CountDocuments(ctx, bson.D{{Key: "_id", Value: jti}})
	if err != nil {
		return false, classify(err)
	}
	return n > 0, nil
}
