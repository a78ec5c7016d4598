package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ColRevocations lists revoked access tokens by their jti, and revoked
// token families (every token of one login) as "family:<fam>", until they
// could no longer be used anyway (their refresh deadline). Every
// authenticated request looks here, so a logout or a detected refresh-token
// theft holds on every replica at once.
const ColRevocations = "revocations"

// familyPrefix keeps family ids apart from jtis in the one collection.
const familyPrefix = "family:"

func init() {
	RegisterIndexes(IndexSpec{Collection: ColRevocations, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}})
}

// RevokeToken records jti as revoked until `until`. It reports whether this
// call revoked it (false: it was revoked before), which makes token refresh
// single-use across replicas.
func (s *Store) RevokeToken(ctx context.Context, jti string, until time.Time) (bool, error) {
	return s.revoke(ctx, jti, until, "")
}

// RevokeFamily ends every token of one login until `until` (the login's
// refresh deadline); reason is kept for the record ("logout", "reuse").
func (s *Store) RevokeFamily(ctx context.Context, family string, until time.Time, reason string) error {
	_, err := s.revoke(ctx, familyPrefix+family, until, reason)
	return err
}

func (s *Store) revoke(ctx context.Context, id string, until time.Time, reason string) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	doc := bson.D{{Key: "_id", Value: id}, {Key: "expires_at", Value: until.UTC()}, {Key: "revoked_at", Value: s.Now()}}
	if reason != "" {
		doc = append(doc, bson.E{Key: "reason", Value: reason})
	}
	_, err := s.col(ColRevocations).InsertOne(ctx, doc)
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
	return s.revoked(ctx, jti)
}

// FamilyRevoked reports whether the tokens of family were ended.
func (s *Store) FamilyRevoked(ctx context.Context, family string) (bool, error) {
	return s.revoked(ctx, familyPrefix+family)
}

// revoked is one equality lookup on _id.
func (s *Store) revoked(ctx context.Context, id string) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	n, err := s.col(ColRevocations).CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return false, classify(err)
	}
	return n > 0, nil
}
