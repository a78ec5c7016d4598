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
// inserts nothing and unfollowing a stranger deletes nothing. Followers and
// followings counts are counted from these edges when shown (FollowCounts),
// never kept as $inc counters: FerretDB loses concurrent $inc updates, and a
// crash between an edge write and a counter write would skew one forever.
// Counting is served by the follower/followee indexes.
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
	return true, nil
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
	return res.DeletedCount > 0, nil
}

// FollowCounts counts followers and followings of each of users.
func (s *Store) FollowCounts(ctx context.Context, users []int64) (followers, followings map[int64]int64, err error) {
	followers, followings = map[int64]int64{}, map[int64]int64{}
	if len(users) == 0 {
		return followers, followings, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	for _, side := range []struct {
		field string
		into  map[int64]int64
	}{{"followee", followers}, {"follower", followings}} {
		cur, err := s.col(ColFollows).Aggregate(ctx, mongo.Pipeline{
			{{Key: "$match", Value: bson.D{{Key: side.field, Value: bson.D{{Key: "$in", Value: users}}}}}},
			{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + side.field}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		})
		if err != nil {
			return nil, nil, classify(err)
		}
		var rows []struct {
			ID int64 `bson:"_id"`
			N  int64 `bson:"n"`
		}
		if err := cur.All(ctx, &rows); err != nil {
			return nil, nil, classify(err)
		}
		for _, r := range rows {
			side.into[r.ID] = r.N
		}
	}
	return followers, followings, nil
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

// deleteFollows removes a deleted user's edges in both directions.
func deleteFollows(ctx context.Context, s *Store, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColFollows).DeleteMany(ctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "follower", Value: user}}, bson.D{{Key: "followee", Value: user}},
	}}})
	return classify(err)
}
