package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColCodes holds one-time verification codes: one document per target
// ("email:ann@example.com", "phone:+8613800000000"), the latest code sent.
// Only an HMAC of the code is stored. Expiry is checked in code: FerretDB
// has no TTL indexes, so old documents are swept by the writers instead.
const ColCodes = "codes"

// Code errors.
var (
	// ErrCodeInvalid covers wrong, expired, used-up and never-sent codes
	// alike: a caller learns nothing about which.
	ErrCodeInvalid = errors.New("verification code is wrong or has expired")
	// ErrCodeSpent is a code whose tries are all taken: no guess is judged
	// any more, the right one neither. The user asks for a new code.
	ErrCodeSpent = errors.New("verification code has had too many tries")
	// ErrCodeUsed is a code that was used already: nothing is judged (a
	// guess against it cannot win), so it takes no try.
	ErrCodeUsed = errors.New("verification code was used already")
)

// TooSoonError refuses a resend within the resend interval.
type TooSoonError struct{ Wait time.Duration }

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("a code was sent to this target recently; retry in %d seconds", e.Seconds())
}

// Seconds is the wait rounded up to whole seconds, at least 1.
func (e *TooSoonError) Seconds() int64 {
	s := int64((e.Wait + time.Second - 1) / time.Second)
	return max(s, 1)
}

type codeDoc struct {
	Target    string    `bson:"_id"`
	Hash      string    `bson:"hash"`
	Purpose   string    `bson:"purpose"`
	SentAt    time.Time `bson:"sent_at"`
	ExpiresAt time.Time `bson:"expires_at"`
	Used      bool      `bson:"used"`
}

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColCodes, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}},
		IndexSpec{Collection: ColCodes, Name: "gen_kind", Keys: bson.D{{Key: "gen", Value: 1}, {Key: "kind", Value: 1}}},
	)
}

// CodeTarget is the key of a code: channel and normalized address.
func CodeTarget(kind, address string) string { return kind + ":" + address }

// IssueCode records a freshly generated code (its hash) for target, unless
// one was sent less than resendAfter ago: then *TooSoonError. The check and
// the write are one atomic upsert, so replicas racing on one target let
// exactly one code through.
func (s *Store) IssueCode(ctx context.Context, target, hash, purpose string, ttl, resendAfter time.Duration) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	_, err := s.col(ColCodes).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: target}, {Key: "sent_at", Value: bson.D{{Key: "$lte", Value: now.Add(-resendAfter)}}}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "hash", Value: hash}, {Key: "purpose", Value: purpose}, {Key: "sent_at", Value: now},
			{Key: "expires_at", Value: now.Add(ttl)}, {Key: "used", Value: false},
		}}},
		options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		// The document exists and was sent too recently.
		var d codeDoc
		if err := decodeOne(s.col(ColCodes).FindOne(ctx, bson.D{{Key: "_id", Value: target}}), &d); err != nil {
			return classify(err)
		}
		return &TooSoonError{Wait: d.SentAt.Add(resendAfter).Sub(now)}
	}
	if err != nil {
		return classify(err)
	}
	s.maybeSweep(ctx, ColCodes, "expires_at")
	return nil
}

// WithdrawCode forgets a code that could not be delivered, so the user may
// ask again at once. Only the code with this hash goes.
func (s *Store) WithdrawCode(ctx context.Context, target, hash string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColCodes).DeleteOne(ctx, bson.D{{Key: "_id", Value: target}, {Key: "hash", Value: hash}})
	return classify(err)
}

// ConsumeCode accepts the code with this hash once: it must be the latest
// code sent to target, unexpired, and have had fewer than maxAttempts tries.
// Every try takes an attempt slot BEFORE the comparison, so at most
// maxAttempts guesses are ever judged per code, however many arrive at once;
// once they are taken the code is dead (ErrCodeSpent), the right code too.
//
// Taking a try and using the code are inserts under unique _ids
// ("try|<target>|<sent>|<n>", n = 1..maxAttempts, and "used|<target>|<sent>"),
// not conditional updates: FerretDB applies {used: false} -> {used: true}
// without isolation, so two racing requests could both use one code, and a
// brute force could outrun an $inc counter. Two replicas racing with the
// right code: exactly one wins.
func (s *Store) ConsumeCode(ctx context.Context, target, hash string, maxAttempts int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	var d codeDoc
	err := decodeOne(s.col(ColCodes).FindOne(ctx, bson.D{{Key: "_id", Value: target}}), &d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ErrCodeInvalid
	}
	if err != nil {
		return classify(err)
	}
	if !d.ExpiresAt.After(now) {
		return ErrCodeInvalid
	}
	if d.Used {
		return ErrCodeUsed
	}
	gen := target + "|" + strconv.FormatInt(d.SentAt.UnixNano(), 10)
	tries, err := s.col(ColCodes).CountDocuments(ctx, bson.D{{Key: "gen", Value: gen}, {Key: "kind", Value: "try"}})
	if err != nil {
		return classify(err)
	}
	won := false
	for n := tries + 1; n <= maxAttempts && !won; n++ {
		_, err := s.col(ColCodes).InsertOne(ctx, bson.D{
			{Key: "_id", Value: "try|" + gen + "|" + strconv.FormatInt(n, 10)}, {Key: "gen", Value: gen},
			{Key: "kind", Value: "try"}, {Key: "expires_at", Value: d.ExpiresAt},
		})
		switch {
		case err == nil:
			won = true
		case !mongo.IsDuplicateKeyError(err):
			return classify(err)
		}
		// Try n was taken meanwhile: the next one.
	}
	if !won {
		return ErrCodeSpent
	}
	if subtle.ConstantTimeCompare([]byte(d.Hash), []byte(hash)) != 1 {
		return ErrCodeInvalid
	}
	_, err = s.col(ColCodes).InsertOne(ctx, bson.D{
		{Key: "_id", Value: "used|" + gen}, {Key: "gen", Value: gen}, {Key: "kind", Value: "used"}, {Key: "expires_at", Value: d.ExpiresAt},
	})
	if mongo.IsDuplicateKeyError(err) {
		return ErrCodeUsed // by a request that read the code at the same time
	}
	if err != nil {
		return classify(err)
	}
	// Also mark the code document, so the state shows; the insert above
	// is what makes the use single.
	_, _ = s.col(ColCodes).UpdateOne(ctx, bson.D{{Key: "_id", Value: target}, {Key: "sent_at", Value: d.SentAt}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "used", Value: true}}}})
	return nil
}

// maybeSweep deletes expired documents now and then (about one write in
// fifty), standing in for the TTL index FerretDB lacks. Best effort.
func (s *Store) maybeSweep(ctx context.Context, collection, field string) {
	if rand.IntN(50) != 0 {
		return
	}
	_, err := s.col(collection).DeleteMany(ctx, bson.D{{Key: field, Value: bson.D{{Key: "$lt", Value: s.Now()}}}})
	if err != nil {
		s.log.Debug("sweep failed", "collection", collection, "error", err)
	}
}
