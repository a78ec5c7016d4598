package seed

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/server/store"
)

// batchSize of each insertMany: large enough to amortize round trips, small
// enough to stay far below MongoDB's 48 MB message limit.
const batchSize = 1000

// Insert writes the profiles and groups in parallel batches and moves the
// id sequences past them, so users created later through the API get fresh
// ids. The collections should be empty.
func (g *Gen) Insert(ctx context.Context, db *mongo.Database, parallel int, progress func(done int)) error {
	groups := make([]any, 0, g.cfg.Groups)
	for id := int64(1); id <= int64(g.cfg.Groups); id++ {
		groups = append(groups, g.Group(id))
	}
	if len(groups) > 0 {
		if _, err := db.Collection(store.ColGroups).InsertMany(ctx, groups); err != nil {
			return fmt.Errorf("insert groups: %w", err)
		}
	}

	if parallel < 1 {
		parallel = 1
	}
	var (
		next     atomic.Int64 // first id of the next batch, minus one
		inserted atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int64(g.cfg.Profiles)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			docs := make([]any, 0, batchSize)
			for ctx.Err() == nil {
				from := next.Add(batchSize) - batchSize + 1
				if from > total {
					return
				}
				to := min(from+batchSize-1, total)
				docs = docs[:0]
				for id := from; id <= to; id++ {
					docs = append(docs, g.Profile(id))
				}
				if _, err := db.Collection(store.ColProfiles).InsertMany(ctx, docs,
					options.InsertMany().SetOrdered(false)); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("insert profiles %d-%d: %w", from, to, err); cancel() })
					return
				}
				if n := inserted.Add(to - from + 1); progress != nil {
					progress(int(n))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for seq, value := range map[string]int64{store.ColProfiles: total, store.ColGroups: int64(g.cfg.Groups)} {
		_, err := db.Collection(store.ColCounters).UpdateOne(ctx, bson.D{{Key: "_id", Value: seq}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: value}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("advance counter %s: %w", seq, err)
		}
	}
	return nil
}
