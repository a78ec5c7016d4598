package store

// The parts of an import that link users: groups, follow edges (see the
// comment at the top of imports.go) and opening balances.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// importFollowDoc is a follow edge written by an import. An edge that
// points at a followee's source id before that followee is imported also
// carries its source key, by which a remap finds it; other edges point at
// their final user and carry none.
type importFollowDoc struct {
	ID          string    `bson:"_id"`
	Follower    int64     `bson:"follower"`
	Followee    int64     `bson:"followee"`
	Ends        []int64   `bson:"ends"`
	Created     time.Time `bson:"created_at"`
	FolloweeSrc string    `bson:"followee_src,omitempty"`
}

func newImportEdge(follower, followee int64, src string, now time.Time) importFollowDoc {
	return importFollowDoc{ID: followID(follower, followee), Follower: follower, Followee: followee,
		Ends: []int64{followee, -follower}, Created: now, FolloweeSrc: src}
}

type pendingFollowDoc struct {
	ID          string `bson:"_id"`
	Follower    int64  `bson:"follower"`
	FolloweeSrc string `bson:"followee_src"`
}

type remapDoc struct {
	ID     string `bson:"_id"`
	UserID int64  `bson:"user_id"`
}

// bulkChunk is the most documents one InsertMany of an import carries.
// Chunks go one at a time: four at once imported 100,000 users up to 10%
// faster on FerretDB, but the tenant's other requests then waited 2.5
// times longer during the import (signups p50 20 -> 50 ms), so an import
// leaves room for live traffic. See docs/bench.md.
const bulkChunk = 1000

// insertChunks inserts docs unordered, bulkChunk at a time. accept is
// called with the index of each document the store refused and its
// error, and says whether that refusal is expected; any other failure is
// an error.
func (s *Store) insertChunks(ctx context.Context, collection string, docs []any, accept func(index int, we mongo.BulkWriteError) bool) error {
	for lo := 0; lo < len(docs); lo += bulkChunk {
		chunk := docs[lo:min(lo+bulkChunk, len(docs))]
		err := retryTransient(ctx, func() error {
			octx, cancel := s.bulkOpContext(ctx)
			defer cancel()
			_, err := s.col(collection).InsertMany(octx, chunk, options.InsertMany().SetOrdered(false))
			var bwe mongo.BulkWriteException
			if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 && bwe.WriteConcernError == nil {
				for _, we := range bwe.WriteErrors {
					if !accept(lo+we.Index, we) {
						return err
					}
				}
				return nil
			}
			return err
		})
		if err != nil {
			return classify(err)
		}
	}
	return nil
}

// insertUnordered inserts docs and returns the indexes of those the store
// refused (a unique key or the _id taken).
func (s *Store) insertUnordered(ctx context.Context, collection string, docs []any) (map[int]bool, error) {
	refused := map[int]bool{}
	err := s.insertChunks(ctx, collection, docs, func(i int, _ mongo.BulkWriteError) bool {
		refused[i] = true
		return true
	})
	return refused, err
}

// insertIgnoringDuplicates inserts docs; documents whose unique key exists
// already are what an earlier run wrote.
func (s *Store) insertIgnoringDuplicates(ctx context.Context, collection string, docs []any) error {
	return s.insertChunks(ctx, collection, docs, func(_ int, we mongo.BulkWriteError) bool { return we.Code == 11000 })
}

// importGroups creates the groups the batch names that do not exist, with
// their source ids, and moves the group sequence past them.
func (s *Store) importGroups(ctx context.Context, users []ImportUser) error {
	seen := map[int64]bool{}
	var docs []any
	var top int64
	now := s.Now()
	for i := range users {
		for _, g := range users[i].Groups {
			if seen[g.ID] {
				continue
			}
			seen[g.ID] = true
			name := g.Name
			if name == "" {
				name = fmt.Sprintf("group %d", g.ID)
			}
			docs = append(docs, &Group{ID: g.ID, Name: name, Created: now})
			top = max(top, g.ID)
		}
	}
	if len(docs) == 0 {
		return nil
	}
	if err := s.raiseSequence(ctx, ColGroups, top); err != nil {
		return err
	}
	return s.insertIgnoringDuplicates(ctx, ColGroups, docs)
}

// importFollows writes the follow edges of the records that finished.
func (s *Store) importFollows(ctx context.Context, users []ImportUser, results []ImportResult, opt ImportOptions) error {
	inBatch := map[string]int64{}
	for i := range users {
		if results[i].Status != ImportError && results[i].UserID != 0 {
			inBatch[users[i].Source()] = results[i].UserID
		}
	}
	// Followees outside the batch: remapped, imported, held by another
	// user (pending) or not there yet (their source id, which they get).
	var outside []string
	var outsideIDs []int64
	seen := map[string]bool{}
	for i := range users {
		if !finishes(&users[i], results[i], opt) {
			continue
		}
		for _, f := range users[i].Followings {
			src := sourceKey(users[i].Namespace, f)
			if _, ok := inBatch[src]; ok || seen[src] {
				continue
			}
			seen[src] = true
			outside = append(outside, src)
			outsideIDs = append(outsideIDs, f)
		}
	}
	t0 := time.Now()
	remaps, err := s.remapsOf(ctx, outside)
	if err != nil {
		return err
	}
	t1 := time.Now()
	holders, err := s.importSources(ctx, users[0].Namespace, outsideIDs)
	if err != nil {
		return err
	}
	s.log.Debug("import follows lookups", "outside", len(outside), "remaps", t1.Sub(t0), "holders", time.Since(t1))
	now := s.Now()
	var edges, pending []any
	optimistic := map[string]int64{} // sources whose edges point at their source id
	for i := range users {
		if !finishes(&users[i], results[i], opt) {
			continue
		}
		follower := results[i].UserID
		for _, f := range users[i].Followings {
			src := sourceKey(users[i].Namespace, f)
			followee, ok := inBatch[src]
			if !ok {
				followee, ok = remaps[src]
			}
			if !ok {
				holder, held := holders[f]
				if held && holder != src {
					pending = append(pending, &pendingFollowDoc{ID: fmt.Sprintf("%d>%s", follower, src), Follower: follower, FolloweeSrc: src})
					optimistic[src] = f
					continue
				}
				followee = f
				if !held {
					optimistic[src] = f
				}
			}
			if followee == follower {
				continue
			}
			edgeSrc := ""
			if _, ok := optimistic[src]; ok {
				edgeSrc = src
			}
			edges = append(edges, newImportEdge(follower, followee, edgeSrc, now))
		}
	}
	if err := s.insertIgnoringDuplicates(ctx, ColFollows, edges); err != nil {
		return err
	}
	if err := s.insertIgnoringDuplicates(ctx, ColImportPending, pending); err != nil {
		return err
	}
	arrived := map[string]int64{}
	for i := range users {
		if finishes(&users[i], results[i], opt) && results[i].UserID == users[i].SourceID {
			arrived[users[i].Source()] = users[i].SourceID
		}
	}
	if err := s.settlePending(ctx, arrived); err != nil {
		return err
	}
	// A followee remapped while these edges were written: re-point them
	// (remapFollowee writes its remap before it moves edges, so one of
	// the two always sees the other).
	sources := make([]string, 0, len(optimistic))
	for src := range optimistic {
		sources = append(sources, src)
	}
	late, err := s.remapsOf(ctx, sources)
	if err != nil {
		return err
	}
	for src, id := range late {
		if err := s.repointFollows(ctx, src, optimistic[src], id); err != nil {
			return err
		}
	}
	return nil
}

// remapsOf reads the remaps of sources (a small collection: only users
// whose id was taken are in it).
func (s *Store) remapsOf(ctx context.Context, sources []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(sources) == 0 {
		return out, nil
	}
	var docs []remapDoc
	err := retryTransient(ctx, func() error {
		docs = docs[:0]
		octx, cancel := s.opContext(ctx)
		defer cancel()
		cur, err := s.col(ColImportRemaps).Find(octx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: sources}}}})
		if err != nil {
			return err
		}
		return decodeAll(octx, cur, &docs)
	})
	if err != nil {
		return nil, classify(err)
	}
	for _, d := range docs {
		out[d.ID] = d.UserID
	}
	return out, nil
}

// importSources tells, for the ids that are profiles, their import_source
// ("" for users not imported). One lookup by _id each, a few at a time:
// FerretDB serves _id equality from the primary key but scans the whole
// collection for $in, which would make a large import quadratic. Ids this
// process has seen free or imported from ns are not looked up again (see
// knownIDs), nor are ids in a fresh range (see freshIDs).
func (s *Store) importSources(ctx context.Context, ns string, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	known, fresh := s.knownImportIDs(ns), s.freshImportIDs(ns)
	var ask []int64
	for _, id := range ids {
		if !known.has(id) && !fresh.has(id) {
			ask = append(ask, id)
		}
	}
	var mu sync.Mutex
	err := s.forEach(ctx, len(ask), func(i int) error {
		p, err := s.importLookup(ctx, bson.D{{Key: FieldID, Value: ask[i]}})
		if err != nil {
			return err
		}
		if p == nil || p.ImportSource == sourceKey(ns, ask[i]) {
			known.add(ask[i])
		}
		if p != nil {
			mu.Lock()
			out[p.ID] = p.ImportSource
			mu.Unlock()
		}
		return nil
	})
	return out, err
}

// knownIDs is a bitmap of source ids of one format that this process has
// seen either free or imported from that format. Neither can turn into a
// user of another origin: the id sequence is already past them, so only an
// import of another format naming the same id could take one (then its
// followers' edges would point at that user; see docs/migration.md). It
// covers ids below maxKnownID (2 MiB of bits at most); others are always
// looked up.
type knownIDs struct {
	mu   sync.Mutex
	bits []uint64
}

const maxKnownID = 1 << 24

func (k *knownIDs) has(id int64) bool {
	if id <= 0 || id >= maxKnownID {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	w := int(id / 64)
	return w < len(k.bits) && k.bits[w]&(1<<(uint(id)%64)) != 0
}

func (k *knownIDs) add(id int64) {
	if id <= 0 || id >= maxKnownID {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	w := int(id / 64)
	if w >= len(k.bits) {
		k.bits = append(k.bits, make([]uint64, w+1-len(k.bits))...)
	}
	k.bits[w] |= 1 << (uint(id) % 64)
}

func (s *Store) knownImportIDs(ns string) *knownIDs {
	k, _ := s.importKnown.LoadOrStore(ns, &knownIDs{})
	return k.(*knownIDs)
}

// remapFollowee records that src got user id instead of its source id and
// re-points the edges already written for it.
func (s *Store) remapFollowee(ctx context.Context, src string, sourceID, id int64) error {
	if err := s.insertIgnoringDuplicates(ctx, ColImportRemaps, []any{&remapDoc{ID: src, UserID: id}}); err != nil {
		return err
	}
	return s.repointFollows(ctx, src, sourceID, id)
}

// repointFollows moves the edges naming src, which point at its source id,
// and its pending edges to user id.
func (s *Store) repointFollows(ctx context.Context, src string, sourceID, id int64) error {
	var wrong []importFollowDoc
	if err := s.findAll(ctx, ColFollows, bson.D{{Key: "followee", Value: sourceID}, {Key: "followee_src", Value: src}}, &wrong); err != nil {
		return err
	}
	var pend []pendingFollowDoc
	if err := s.findAll(ctx, ColImportPending, bson.D{{Key: "followee_src", Value: src}}, &pend); err != nil {
		return err
	}
	now := s.Now()
	var edges []any
	for _, e := range wrong {
		if e.Followee != id && e.Follower != id {
			edges = append(edges, newImportEdge(e.Follower, id, "", now))
		}
	}
	for _, p := range pend {
		if p.Follower != id {
			edges = append(edges, newImportEdge(p.Follower, id, "", now))
		}
	}
	if err := s.insertIgnoringDuplicates(ctx, ColFollows, edges); err != nil {
		return err
	}
	for _, e := range wrong {
		if e.Followee != id {
			if err := s.deleteByID(ctx, ColFollows, e.ID); err != nil {
				return err
			}
		}
	}
	for _, p := range pend {
		if err := s.deleteByID(ctx, ColImportPending, p.ID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) findAll(ctx context.Context, collection string, filter bson.D, out any) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		cur, err := s.col(collection).Find(octx, filter)
		if err != nil {
			return err
		}
		return cur.All(octx, out)
	})
	return classify(err)
}

func (s *Store) deleteByID(ctx context.Context, collection string, id any) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(collection).DeleteOne(octx, bson.D{{Key: "_id", Value: id}})
		return err
	})
	return classify(err)
}

func init() { RegisterUserCleanup(deletePendingFollows) }

// deletePendingFollows removes a deleted user's pending imported follows.
func deletePendingFollows(ctx context.Context, s *Store, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColImportPending).DeleteMany(ctx, bson.D{{Key: "follower", Value: user}})
	return classify(err)
}
