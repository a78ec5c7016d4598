package store

import (
	"context"
	"errors"
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
//
// Each edge also lists the two counts it adds to, in `ends`: the followee's
// id (one of its followers) and the follower's id negated (one of its
// followings). Unwinding `ends` and grouping by it yields both counts of
// any number of users in one aggregation, which FerretDB 1.24 can run (it
// has no $facet, $lookup or $cond). User ids are positive, so the two
// kinds never mix.
const ColFollows = "follows"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColFollows, Name: "follower_created", Keys: bson.D{{Key: "follower", Value: 1}, {Key: "created_at", Value: -1}}},
		IndexSpec{Collection: ColFollows, Name: "followee_created", Keys: bson.D{{Key: "followee", Value: 1}, {Key: "created_at", Value: -1}}},
		IndexSpec{Collection: ColFollows, Name: "ends", Keys: bson.D{{Key: "ends", Value: 1}}},
	)
	RegisterUserCleanup(deleteFollows)
}

type followDoc struct {
	ID       string    `bson:"_id"`
	Follower int64     `bson:"follower"`
	Followee int64     `bson:"followee"`
	Ends     []int64   `bson:"ends"` // {followee, -follower}: the counts this edge adds to
	Created  time.Time `bson:"created_at"`
}

func followID(follower, followee int64) string {
	return strconv.FormatInt(follower, 10) + ":" + strconv.FormatInt(followee, 10)
}

// Follow makes follower follow followee; changed is false when it already
// did. Both users must exist (the caller checks). An edge to or from a user
// being deleted or merged away is taken back and is ErrNotFound: the edge
// is written before the tombstones are read, and a deletion writes its
// tombstone before it removes edges, so one of the two sees the other.
func (s *Store) Follow(ctx context.Context, follower, followee int64) (changed bool, err error) {
	id := followID(follower, followee)
	octx, cancel := s.opContext(ctx)
	_, err = s.col(ColFollows).InsertOne(octx, followDoc{
		ID: id, Follower: follower, Followee: followee,
		Ends: []int64{followee, -follower}, Created: s.Now(),
	})
	cancel()
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, classify(err)
	}
	buried, err := s.tombstonedAmong(ctx, []int64{follower, followee})
	if err != nil {
		return false, err
	}
	if len(buried) > 0 {
		return false, errors.Join(ErrNotFound, s.deleteByID(ctx, ColFollows, id))
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

// FollowCounts counts followers and followings of each of users, in one
// aggregation over the edges' ends (see ColFollows).
func (s *Store) FollowCounts(ctx context.Context, users []int64) (followers, followings map[int64]int64, err error) {
	followers, followings = map[int64]int64{}, map[int64]int64{}
	if len(users) == 0 {
		return followers, followings, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColFollows).Aggregate(ctx, FollowCountsPipeline(users))
	if err != nil {
		return nil, nil, classify(err)
	}
	var rows []struct {
		End int64 `bson:"_id"`
		N   int64 `bson:"n"`
	}
	if err := decodeAll(ctx, cur, &rows); err != nil {
		return nil, nil, classify(err)
	}
	for _, r := range rows {
		if r.End > 0 {
			followers[r.End] = r.N
		} else {
			followings[-r.End] = r.N
		}
	}
	return followers, followings, nil
}

// FollowCountsPipeline is FollowCounts' aggregation over ColFollows: one
// row per counted end, _id the user's id for their followers and the
// negated id for their followings, n the count. (Exported for the bench,
// which issues the same query.)
func FollowCountsPipeline(users []int64) mongo.Pipeline {
	ends := make([]int64, 0, 2*len(users))
	for _, u := range users {
		ends = append(ends, u, -u)
	}
	inEnds := bson.D{{Key: "ends", Value: bson.D{{Key: "$in", Value: ends}}}}
	return mongo.Pipeline{
		{{Key: "$match", Value: inEnds}},
		{{Key: "$unwind", Value: "$ends"}},
		{{Key: "$match", Value: inEnds}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$ends"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	}
}

// FollowEdge is follower following followee.
type FollowEdge struct{ Follower, Followee int64 }

// FollowsAll tells which of edges exist, in one query.
func (s *Store) FollowsAll(ctx context.Context, edges []FollowEdge) (map[FollowEdge]bool, error) {
	exist := map[FollowEdge]bool{}
	if len(edges) == 0 {
		return exist, nil
	}
	ids := make([]string, len(edges))
	for i, e := range edges {
		ids[i] = followID(e.Follower, e.Followee)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColFollows).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "follower", Value: 1}, {Key: "followee", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var docs []followDoc
	if err := decodeAll(ctx, cur, &docs); err != nil {
		return nil, classify(err)
	}
	for _, d := range docs {
		exist[FollowEdge{d.Follower, d.Followee}] = true
	}
	return exist, nil
}

// FollowRelations tells, for each of others, whether viewer follows it
// (following) and whether it follows viewer (follower).
func (s *Store) FollowRelations(ctx context.Context, viewer int64, others []int64) (following, follower map[int64]bool, err error) {
	following, follower = map[int64]bool{}, map[int64]bool{}
	if viewer == 0 || len(others) == 0 {
		return following, follower, nil
	}
	edges := make([]FollowEdge, 0, 2*len(others))
	for _, o := range others {
		edges = append(edges, FollowEdge{viewer, o}, FollowEdge{o, viewer})
	}
	exist, err := s.FollowsAll(ctx, edges)
	if err != nil {
		return nil, nil, err
	}
	for e := range exist {
		if e.Follower == viewer {
			following[e.Followee] = true
		}
		if e.Followee == viewer {
			follower[e.Follower] = true
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
	if err := decodeAll(ctx, cur, &docs); err != nil {
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
