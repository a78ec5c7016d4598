package store

// Tombstones: a deleted or merged-away user stays deleted.
//
// Deleting a user takes several writes (follows, wallet, ledger, WeChat
// session, profile) and no transaction holds them together, so deletion
// starts with a tombstone, in two places:
//
//   - a document in `tombstones` (_id = the user id), kept forever: no
//     import and no new user ever gets that id again, so a token issued to
//     the deleted user can never come back to life as somebody else's;
//   - a mark on the profile (`tombstone`) that also bumps token_epoch and,
//     for a deletion, frees the user's unique identities at once. Readers of
//     live profiles (GetProfile, FindProfileBy, the wallet's existence
//     check) treat a marked profile as gone, so while its data is removed
//     no token of it works and no transfer, adjust or follow can be made for
//     it.
//
// The profile goes last and only while marked. A deletion cut off half-way
// is finished by retrying it or by FinishDeletions (the ledger sweep). A
// merge marks `from` when it starts (merge.go), so a user being folded
// receives nothing either, and records its tombstone the same way.

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColTombstones holds one document per deleted or merged-away user id.
const ColTombstones = "tombstones"

// Tombstone reasons.
const (
	TombstoneDeleted = "deleted"
	TombstoneMerged  = "merged"
)

// ProfileTombstone marks a profile whose user is being deleted or merged
// away.
type ProfileTombstone struct {
	Reason string    `bson:"reason"`
	At     time.Time `bson:"at"`
}

type tombstoneDoc struct {
	ID     int64     `bson:"_id"`
	Reason string    `bson:"reason"`
	At     time.Time `bson:"at"`
	Done   bool      `bson:"done"` // the profile is gone
}

// tombstoneEpochStep is what a tombstone adds to token_epoch: no token
// carries such an epoch, so every token of the user dies with the mark.
const tombstoneEpochStep = int64(1) << 32

func init() {
	RegisterIndexes(IndexSpec{Collection: ColTombstones, Name: "done_at", Keys: bson.D{{Key: "done", Value: 1}, {Key: "at", Value: 1}}})
}

// buryUser records id's tombstone and marks its profile (idempotent). A
// deletion also frees the profile's unique identities and password now; a
// merge frees them itself, as its plan says.
func (s *Store) buryUser(ctx context.Context, id int64, reason string) error {
	if err := s.recordTombstone(ctx, id, reason); err != nil {
		return err
	}
	now := s.Now()
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "tombstone", Value: ProfileTombstone{Reason: reason, At: now}}, {Key: FieldUpdatedAt, Value: now}}},
		{Key: "$inc", Value: bson.D{{Key: "token_epoch", Value: tombstoneEpochStep}}},
	}
	if reason == TombstoneDeleted {
		unset := bson.D{{Key: "password_hash", Value: ""}, {Key: FieldImportSource, Value: ""}}
		for _, f := range mergeIdentityFields {
			unset = append(unset, bson.E{Key: f, Value: ""})
		}
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColProfiles).UpdateOne(octx,
			bson.D{{Key: FieldID, Value: id}, {Key: "tombstone", Value: bson.D{{Key: "$exists", Value: false}}}}, update)
		return err
	})
	return classify(err)
}

// recordTombstone inserts id's lasting tombstone (idempotent).
func (s *Store) recordTombstone(ctx context.Context, id int64, reason string) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColTombstones).InsertOne(octx, tombstoneDoc{ID: id, Reason: reason, At: s.Now()})
		if mongo.IsDuplicateKeyError(err) {
			return nil
		}
		return err
	})
	return classify(err)
}

// rawProfile is the profile document with this id, marked or not.
func (s *Store) rawProfile(ctx context.Context, id int64) (*Profile, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var p Profile
	if err := decodeOne(s.col(ColProfiles).FindOne(ctx, bson.D{{Key: FieldID, Value: id}}), &p); err != nil {
		return nil, classify(err)
	}
	p.normalize()
	return &p, nil
}

// Tombstoned reports whether id belonged to a deleted or merged-away user
// (or one being deleted or merged away).
func (s *Store) Tombstoned(ctx context.Context, id int64) (bool, error) {
	var taken bool
	err := retryTransient(ctx, func() error {
		var err error
		taken, err = s.exists(ctx, ColTombstones, bson.D{{Key: "_id", Value: id}})
		return err
	})
	return taken, err
}

// deletedUser reports whether id's user was deleted (or is being deleted);
// merged-away users do not count.
func (s *Store) deletedUser(ctx context.Context, id int64) (bool, error) {
	var deleted bool
	err := retryTransient(ctx, func() error {
		var err error
		deleted, err = s.exists(ctx, ColTombstones, bson.D{{Key: "_id", Value: id}, {Key: "reason", Value: TombstoneDeleted}})
		return err
	})
	return deleted, err
}

// tombstonedAmong is the subset of ids that have a tombstone.
func (s *Store) tombstonedAmong(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	var docs []tombstoneDoc
	if err := s.findAll(ctx, ColTombstones, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, &docs); err != nil {
		return nil, err
	}
	for _, d := range docs {
		out[d.ID] = true
	}
	return out, nil
}

// finishTombstone records that id's profile is gone.
func (s *Store) finishTombstone(ctx context.Context, id int64) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColTombstones).UpdateOne(octx, bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "done", Value: true}}}})
		return err
	})
	return classify(err)
}

// deletionGrace is how long a deletion may run before FinishDeletions
// takes it as cut off and finishes it.
const deletionGrace = time.Minute

// FinishDeletions finishes deletions cut off half-way (a crash, the store
// away) and returns how many it finished. Merges are finished by
// replaying them, which their own record allows.
func (s *Store) FinishDeletions(ctx context.Context) (int, error) {
	var docs []tombstoneDoc
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		cur, err := s.col(ColTombstones).Find(octx, bson.D{{Key: "done", Value: false}, {Key: "reason", Value: TombstoneDeleted},
			{Key: "at", Value: bson.D{{Key: "$lte", Value: s.Now().Add(-deletionGrace)}}}}, options.Find().SetLimit(100))
		if err != nil {
			return err
		}
		return cur.All(octx, &docs)
	})
	if err != nil {
		return 0, classify(err)
	}
	n := 0
	for _, d := range docs {
		if err := s.DeleteUser(ctx, d.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

// removeBuried deletes the profile of a buried user, only while it is
// marked: an id is never reused, but the filter keeps this delete from
// ever taking another document.
func (s *Store) removeBuried(ctx context.Context, id int64) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColProfiles).DeleteOne(octx, bson.D{{Key: FieldID, Value: id}, {Key: "tombstone", Value: bson.D{{Key: "$exists", Value: true}}}})
		return err
	})
	return classify(err)
}

// removeUnburied deletes a profile just inserted under a buried id (only a
// profile without a mark: never the buried user's own).
func (s *Store) removeUnburied(ctx context.Context, id int64) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColProfiles).DeleteOne(octx, bson.D{{Key: FieldID, Value: id}, {Key: "tombstone", Value: bson.D{{Key: "$exists", Value: false}}}})
		return err
	})
	return classify(err)
}
