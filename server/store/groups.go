package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Group is a user group. Membership lives in the profiles' groups arrays, so
// a user's groups go with the user and member counts are counted, never
// kept as a counter that a crash could skew.
type Group struct {
	ID      int64     `bson:"_id"`
	Name    string    `bson:"name"`
	Parent  *int64    `bson:"parent"` // nil: top level
	Created time.Time `bson:"created_at"`
	Members int64     `bson:"-"` // filled by the reads below
}

const fieldParent = "parent"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColGroups, Name: "parent", Keys: bson.D{{Key: fieldParent, Value: 1}, {Key: FieldID, Value: 1}}},
	)
}

// CreateGroup inserts g with the next group id.
func (s *Store) CreateGroup(ctx context.Context, g *Group) error {
	g.Created = s.Now()
	_, err := s.InsertWithNextID(ctx, ColGroups, ColGroups, func(id int64) any {
		g.ID = id
		return g
	})
	return err
}

// GetGroup is one group with its member count, or ErrNotFound.
func (s *Store) GetGroup(ctx context.Context, id int64) (*Group, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var g Group
	if err := decodeOne(s.col(ColGroups).FindOne(ctx, bson.D{{Key: FieldID, Value: id}}), &g); err != nil {
		return nil, classify(err)
	}
	if err := s.countMembers(ctx, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// GroupQuery is one page of groups, ordered by id.
type GroupQuery struct {
	Parent *int64 // only children of this group
	Limit  int64
	Offset int64
}

// GroupPage is a page of groups.
type GroupPage struct {
	Groups []*Group
	More   bool
	Total  int64
}

// ListGroups runs q.
func (s *Store) ListGroups(ctx context.Context, q GroupQuery) (*GroupPage, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	filter := bson.D{}
	sort := bson.D{{Key: FieldID, Value: 1}}
	if q.Parent != nil {
		filter = bson.D{{Key: fieldParent, Value: *q.Parent}}
		sort = bson.D{{Key: fieldParent, Value: 1}, {Key: FieldID, Value: 1}}
	}
	cur, err := s.col(ColGroups).Find(ctx, filter, options.Find().SetSort(sort).SetSkip(q.Offset).SetLimit(q.Limit+1))
	if err != nil {
		return nil, classify(err)
	}
	var groups []*Group
	if err := decodeAll(ctx, cur, &groups); err != nil {
		return nil, classify(err)
	}
	page := &GroupPage{Groups: groups}
	if int64(len(groups)) > q.Limit {
		page.Groups, page.More = groups[:q.Limit], true
	}
	for _, g := range page.Groups {
		if err := s.countMembers(ctx, g); err != nil {
			return nil, err
		}
	}
	page.Total, err = s.col(ColGroups).CountDocuments(ctx, filter)
	if err != nil {
		return nil, classify(err)
	}
	return page, nil
}

func (s *Store) countMembers(ctx context.Context, g *Group) error {
	n, err := s.col(ColProfiles).CountDocuments(ctx, bson.D{{Key: FieldGroups, Value: g.ID}})
	if err != nil {
		return classify(err)
	}
	g.Members = n
	return nil
}

// UpdateGroup sets a group's name and parent; the updated group comes back.
func (s *Store) UpdateGroup(ctx context.Context, id int64, name string, parent *int64) (*Group, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := s.col(ColGroups).UpdateOne(ctx, bson.D{{Key: FieldID, Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: name}, {Key: fieldParent, Value: parent}}}})
	if err != nil {
		return nil, classify(err)
	}
	if res.MatchedCount == 0 {
		return nil, ErrNotFound
	}
	return s.GetGroup(ctx, id)
}

// GroupParentChain walks up from a group through its ancestors, for cycle
// checks. It stops after limit steps.
func (s *Store) GroupParentChain(ctx context.Context, id int64, limit int) ([]int64, error) {
	var chain []int64
	for len(chain) < limit {
		g, err := s.getGroupDoc(ctx, id)
		if err != nil {
			return chain, err
		}
		chain = append(chain, g.ID)
		if g.Parent == nil {
			break
		}
		id = *g.Parent
	}
	return chain, nil
}

func (s *Store) getGroupDoc(ctx context.Context, id int64) (*Group, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var g Group
	if err := decodeOne(s.col(ColGroups).FindOne(ctx, bson.D{{Key: FieldID, Value: id}}), &g); err != nil {
		return nil, classify(err)
	}
	return &g, nil
}

// DeleteGroups removes groups: first from every member's profile, then the
// children are lifted to the top level, then the group documents go. Each
// step is idempotent, so a delete cut short by an outage can simply be
// repeated. It reports how many group documents were removed.
func (s *Store) DeleteGroups(ctx context.Context, ids []int64) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	in := bson.D{{Key: "$in", Value: ids}}
	if _, err := s.col(ColProfiles).UpdateMany(ctx, bson.D{{Key: FieldGroups, Value: in}},
		bson.D{{Key: "$pullAll", Value: bson.D{{Key: FieldGroups, Value: ids}}}}); err != nil {
		return 0, classify(err)
	}
	if _, err := s.col(ColGroups).UpdateMany(ctx, bson.D{{Key: fieldParent, Value: in}},
		bson.D{{Key: "$set", Value: bson.D{{Key: fieldParent, Value: nil}}}}); err != nil {
		return 0, classify(err)
	}
	res, err := s.col(ColGroups).DeleteMany(ctx, bson.D{{Key: FieldID, Value: in}})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}

// MissingGroups is the subset of ids with no group.
func (s *Store) MissingGroups(ctx context.Context, ids []int64) ([]int64, error) {
	return s.missingIDs(ctx, ColGroups, ids)
}

// AddMembers puts users into groups (already a member: unchanged).
func (s *Store) AddMembers(ctx context.Context, users, groups []int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColProfiles).UpdateMany(ctx, bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: users}}}},
		bson.D{
			{Key: "$addToSet", Value: bson.D{{Key: FieldGroups, Value: bson.D{{Key: "$each", Value: groups}}}}},
			{Key: "$set", Value: bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}},
		})
	return classify(err)
}

// RemoveMembers takes users out of groups (not a member: unchanged).
func (s *Store) RemoveMembers(ctx context.Context, users, groups []int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColProfiles).UpdateMany(ctx, bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: users}}}},
		bson.D{
			{Key: "$pullAll", Value: bson.D{{Key: FieldGroups, Value: groups}}},
			{Key: "$set", Value: bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}},
		})
	return classify(err)
}
