package store

import (
	"bytes"
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ExportedUser is one user as the export streams it.
type ExportedUser struct {
	Profile    *Profile
	Followings []int64 // whom the user follows (user ids); followers are the other side's edges
	Wallet     *Wallet // nil: never had a wallet
}

// exportChunk is how many users are read, completed and handed out at a
// time: the export holds at most this many profiles (and their edges and
// wallets) in memory, whatever the tenant's size.
//
// A chunk is completed by one scan of the follows and one of the wallets,
// not by a query per user: FerretDB 1.24 pushes equality on fields other
// than _id down to PostgreSQL as a containment test that no index serves,
// so each per-user query scanned every edge (38-44 users/s at 20,000
// users). A scan costs the same whatever it looks for, so the chunk is
// large: a 100,000-user export scans the edges twice. The chunk holds the
// profiles as the store sent them (about 0.5 KiB each), decoded one at a
// time when handed out.
var exportChunk = 50000

// maxExports bounds the exports one store streams at once. Each holds a
// chunk in memory (about 70 MiB at 50,000 users), so two fit the tenant
// pod's default 256 MiB limit beside its traffic; a third would risk an
// OOM kill of the replica.
const maxExports = 2

// ErrExportsBusy is an export refused because maxExports are running;
// retrying later is right.
var ErrExportsBusy = fmt.Errorf("this replica is already streaming its maximum of %d exports; retry when one ends", maxExports)

// exportItem is one user of a chunk, before it is handed out.
type exportItem struct {
	raw        bson.Raw
	followings []int64
	wallet     *Wallet
}

// ExportUsers streams every profile matching filter to fn, in the store's
// natural order, with its followings and current wallet. It reads through
// a cursor in chunks, so memory stays bounded at any size. Sorting would
// make FerretDB sort the whole collection in memory, hence no order.
func (s *Store) ExportUsers(ctx context.Context, filter Filter, fn func(*ExportedUser) error) error {
	if err := filter.Validate(); err != nil {
		return err
	}
	select {
	case s.exportSlots <- struct{}{}:
		defer func() { <-s.exportSlots }()
	default:
		return ErrExportsBusy
	}
	cur, err := s.col(ColProfiles).Find(ctx, filter.BSON(), options.Find().SetBatchSize(1000))
	if err != nil {
		return classify(err)
	}
	defer func() { _ = cur.Close(context.Background()) }()
	chunk := map[int64]*exportItem{}
	var order []int64 // the chunk's users in the cursor's order
	flush := func() error {
		if err := s.completeExport(ctx, chunk); err != nil {
			return err
		}
		for _, id := range order {
			it := chunk[id]
			var p Profile
			if err := bson.Unmarshal(it.raw, &p); err != nil {
				return classify(err)
			}
			p.normalize()
			if err := fn(&ExportedUser{Profile: &p, Followings: it.followings, Wallet: it.wallet}); err != nil {
				return err
			}
		}
		clear(chunk)
		order = order[:0]
		return nil
	}
	for cur.Next(ctx) {
		id, ok := cur.Current.Lookup(FieldID).AsInt64OK()
		if !ok {
			return fmt.Errorf("store: a profile without an integer _id: %s", cur.Current)
		}
		if _, dup := chunk[id]; !dup {
			order = append(order, id)
		}
		chunk[id] = &exportItem{raw: bytes.Clone(cur.Current)}
		if len(order) == exportChunk {
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

// completeExport fills in the chunk's followings and wallets.
func (s *Store) completeExport(ctx context.Context, chunk map[int64]*exportItem) error {
	if len(chunk) == 0 {
		return nil
	}
	if err := s.scanFollowings(ctx, chunk); err != nil {
		return err
	}
	return s.scanWallets(ctx, chunk)
}

// scanFollowings reads every edge once and keeps those of users in byID.
func (s *Store) scanFollowings(ctx context.Context, byID map[int64]*exportItem) error {
	cur, err := s.col(ColFollows).Find(ctx, bson.D{}, options.Find().SetBatchSize(5000))
	if err != nil {
		return classify(err)
	}
	defer func() { _ = cur.Close(context.Background()) }()
	for cur.Next(ctx) {
		var e struct {
			Follower int64 `bson:"follower"`
			Followee int64 `bson:"followee"`
		}
		if err := bson.Unmarshal(cur.Current, &e); err != nil {
			return classify(err)
		}
		if u := byID[e.Follower]; u != nil {
			u.followings = append(u.followings, e.Followee)
		}
	}
	return classify(cur.Err())
}

// scanWallets reads every wallet version once and keeps the latest of
// each user in byID (users who never had money keep nil).
func (s *Store) scanWallets(ctx context.Context, byID map[int64]*exportItem) error {
	cur, err := s.col(ColWallets).Find(ctx, bson.D{}, options.Find().SetBatchSize(5000))
	if err != nil {
		return classify(err)
	}
	defer func() { _ = cur.Close(context.Background()) }()
	for cur.Next(ctx) {
		var w Wallet
		if err := bson.Unmarshal(cur.Current, &w); err != nil {
			return classify(err)
		}
		if u := byID[w.UserID]; u != nil && (u.wallet == nil || w.Seq > u.wallet.Seq) {
			w.Created, w.Updated = w.Created.UTC(), w.Updated.UTC()
			u.wallet = &w
		}
	}
	return classify(cur.Err())
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
