package store

import (
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ExportedUser is one user as the export streams it.
type ExportedUser struct {
	Profile    *Profile
	Followings []int64 // whom the user follows (user ids); followers are the other side's edges
	Wallet     *Wallet // nil: never had a wallet
}

// exportBatch is how many users are read, completed and handed out at a
// time: the export holds at most this many in memory.
const exportBatch = 256

// ExportUsers streams every profile matching filter to fn, in the store's
// natural order, with its followings and current wallet. It reads through
// a cursor in batches, so memory stays flat at any size. Sorting would make
// FerretDB sort the whole collection in memory, hence no order.
func (s *Store) ExportUsers(ctx context.Context, filter Filter, fn func(*ExportedUser) error) error {
	if err := filter.Validate(); err != nil {
		return err
	}
	cur, err := s.col(ColProfiles).Find(ctx, filter.BSON(), options.Find().SetBatchSize(exportBatch))
	if err != nil {
		return classify(err)
	}
	defer func() { _ = cur.Close(context.Background()) }()
	batch := make([]*ExportedUser, 0, exportBatch)
	flush := func() error {
		if err := s.completeExport(ctx, batch); err != nil {
			return err
		}
		for _, u := range batch {
			if err := fn(u); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	for cur.Next(ctx) {
		var p Profile
		if err := bson.Unmarshal(cur.Current, &p); err != nil {
			return classify(err)
		}
		p.normalize()
		batch = append(batch, &ExportedUser{Profile: &p})
		if len(batch) == exportBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return classify(err)
	}
	return flush()
}

// completeExport reads the batch's followings and wallets,
// one indexed equality query per user and kind (FerretDB pushes equality
// down to SQL, not $in), a few users at a time.
func (s *Store) completeExport(ctx context.Context, batch []*ExportedUser) error {
	if len(batch) == 0 {
		return nil
	}
	var mu sync.Mutex
	return s.forEach(ctx, len(batch), func(i int) error {
		u := batch[i]
		followings, err := s.allFollowings(ctx, u.Profile.ID)
		if err != nil {
			return err
		}
		w, err := s.latestWallet(ctx, u.Profile.ID)
		if errors.Is(err, ErrNotFound) {
			w, err = nil, nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		u.Followings, u.Wallet = followings, w
		mu.Unlock()
		return nil
	})
}

// allFollowings lists every user id user follows.
func (s *Store) allFollowings(ctx context.Context, user int64) ([]int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// No projection: with one, FerretDB 1.24 does not push the filter
	// down to SQL and scans every edge.
	cur, err := s.col(ColFollows).Find(ctx, bson.D{{Key: "follower", Value: user}})
	if err != nil {
		return nil, classify(err)
	}
	var docs []followDoc
	if err := decodeAll(ctx, cur, &docs); err != nil {
		return nil, classify(err)
	}
	out := make([]int64, len(docs))
	for i, d := range docs {
		out[i] = d.Followee
	}
	return out, nil
}

// GroupNames maps every group id to its name (for exports; groups are few).
func (s *Store) GroupNames(ctx context.Context) (map[int64]string, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColGroups).Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var gs []Group
	if err := decodeAll(ctx, cur, &gs); err != nil {
		return nil, classify(err)
	}
	out := make(map[int64]string, len(gs))
	for _, g := range gs {
		out[g.ID] = g.Name
	}
	return out, nil
}
