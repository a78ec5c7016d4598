package store

import (
	"context"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColFollows holds one document per follow edge, _id "<follower>:<followee>".
// The _id makes a follow unique without a second index, so following twice
// inserts nothing, and the profiles' followers_count/followings_count move
// only when an edge is really inserted or deleted: they stay exact under
// retries and races. (A crash between the edge write and the counter $inc
// would leave them off by one; RecountFollows repairs a user.)
const ColFollows = "follows"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColFollows, Name: "follower_created", Keys: bson.D{{Key: "follower", Value: 1}, {Key: "created_at", Value: -1}}},
		IndexSpec{Collection: ColFollows, Name: "followee_created", Keys: bson.D{{Key: "followee", Value: 1}, {Key: "created_at", Value: -1}}},
	)
	RegisterUserCleanup(deleteFollows)
}

type followDoc struct {
	ID       string    `bson:"_id"`
	Follower int64     `bson:"follower"`
	Followee int64     `bson:"followee"`
	Created  time.Time `bson:"created_at"`
}

func followID(follower, followee int64) string {
	return strconv.FormatInt(follower, 10) + ":" + strconv.FormatInt(followee, 10)
}

// Follow makes follower follow followee; changed is false when it already
// did. Both users must exist (the caller checks).
func (s *Store) Follow(ctx context.Context, follower, followee int64) (changed bool, err error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err = s.col(ColFollows).InsertOne(ctx, followDoc{
		ID: followID(follower, followee), Follower: follower, Followee: followee, Created: s.Now(),
	})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, classify(err)
	}
	return true, s.bumpFollowCounters(ctx, follower, followee, 1)
}

// Unfollow ends the follow; changed is false when there was none, and then
// nothing else changes either.
func (s *Store) Unfollow(ctx context.Context, follower, followee int64) (changed bool, err error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := s.col(ColFollows).DeleteOne(ctx, bson.D{{Key: "_id", Value: followID(follower, followee)}})
	if err != nil {
		return false, classify(err)
	}
	if res.DeletedCount == 0 {
		return false, nil
	}
	return true, s.bumpFollowCounters(ctx, follower, followee, -1)
}

func (s *Store) bumpFollowCounters(ctx context.Context, follower, followee, by int64) error {
	if _, err := s.col(ColProfiles).UpdateOne(ctx, bson.D{{Key: FieldID, Value: follower}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: FieldFollowingsCount, Value: by}}}}); err != nil {
		return classify(err)
	}
	_, err := s.col(ColProfiles).UpdateOne(ctx, bson.D{{Key: FieldID, Value: followee}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: FieldFollowersCount, Value: by}}}})
	return classify(err)
}

// FollowRelations tells, for each of others, whether viewer follows it
// (following) and whether it follows viewer (follower).
func (s *Store) FollowRelations(ctx context.Context, viewer int64, others []int64) (following, follower map[int64]bool, err error) {
	following, follower = map[int64]bool{}, map[int64]bool{}
	if viewer == 0 || len(others) == 0 {
		return following, follower, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var outIDs, inIDs []string
	for _, o := range others {
		outIDs = append(outIDs, followID(viewer, o))
		inIDs = append(inIDs, followID(o, viewer))
	}
	cur, err := s.col(ColFollows).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: append(outIDs, inIDs...)}}}})
	if err != nil {
		return nil, nil, classify(err)
	}
	var docs []followDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, nil, classify(err)
	}
	for _, d := range docs {
		if d.Follower == viewer {
			following[d.Followee] = true
		}
		if d.Followee == viewer {
			follower[d.Follower] = true
		}
	}
	return following, follower, nil
}

// Followings lists whom user follows, newest first.
func (s *Store) Followings(ctx context.Context, user, limit, offset int64) ([]int64, error) {
	return s.followList(ctx, "follower", "followee", user, limit, offset)
}

// Followers lists who follows user, newest first.
func (s *Store) Followers(ctx context.Context, user, limit, offset int64) ([]int64, error) {
	return s.followList(ctx, "followee", "follower", user, limit, offset)
}

func (s *Store) followList(ctx context.Context, by, want string, user, limit, offset int64) ([]int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColFollows).Find(ctx, bson.D{{Key: by, Value: user}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).SetSkip(offset).SetLimit(limit))
	if err != nil {
		return nil, classify(err)
	}
	var docs []followDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, classify(err)
	}
	ids := make([]int64, 0, len(docs))
	for _, d := range docs {
		if want == "followee" {
			ids = append(ids, d.Followee)
		} else {
			ids = append(ids, d.Follower)
		}
	}
	return ids, nil
}

// RecountFollows sets a user's two counters from the edges themselves.
func (s *Store) RecountFollows(ctx context.Context, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	followers, err := s.col(ColFollows).CountDocuments(ctx, bson.D{{Key: "followee", Value: user}})
	if err != nil {
		return classify(err)
	}
	followings, err := s.col(ColFollows).CountDocuments(ctx, bson.D{{Key: "follower", Value: user}})
	if err != nil {
		return classify(err)
	}
	_, err = s.col(ColProfiles).UpdateOne(ctx, bson.D{{Key: FieldID, Value: user}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: FieldFollowersCount, Value: followers}, {Key: FieldFollowingsCount, Value: followings},
	}}})
	return classify(err)
}

// deleteFollows removes a deleted user's edges one by one, moving the other
// side's counter only for an edge this call really deleted: repeating it
// after a crash does not count twice.
func deleteFollows(ctx context.Context, s *Store, user int64) error {
	for _, by := range []string{"follower", "followee"} {
		for {
			ids, err := s.followList(ctx, by, map[string]string{"follower": "followee", "followee": "follower"}[by], user, 200, 0)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			for _, other := range ids {
				var err error
				if by == "follower" {
					_, err = s.Unfollow(ctx, user, other)
				} else {
					_, err = s.Unfollow(ctx, other, user)
				}
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}
