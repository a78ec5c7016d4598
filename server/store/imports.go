package store

// Bulk import of users from another system (issue 15), correct without
// transactions and safe to retry or run many times at once.
//
// Every imported profile carries import_source "<format>:<source id>"
// under a unique index: the natural key that makes a retried batch find
// what it wrote the first time. The batch's records are written by
// unordered inserts (insertChunks), with _id = the source id (kept when free);
// only the records that insert refuses (a unique value already present,
// the id taken) are looked at one by one and handled by the policy.
//
// Follow edges point at user ids. A followee imported in the same batch
// or earlier is looked up; one not imported yet is written as pointing at
// its source id, which the user will get, because the user-id sequence is
// moved past every id an import names (records and followees), so no new
// user can take it. If the id turns out to be held by somebody else when
// the followee arrives, it gets another id, recorded in import_remaps, and
// the edges naming its source are re-pointed (see remapFollowee).
//
// Opening balances are ledger adjusts with the idempotency key
// "import:<source>:<account>": at most one per user and account, ever, with
// the ledger's own invariants.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of imports.
const (
	// ColImportRemaps maps a source whose id was taken to its user id:
	// _id "<format>:<source id>", user_id.
	ColImportRemaps = "import_remaps"
	// ColImportPending holds follow edges whose followee's source id is
	// held by another user and who has not been imported yet: _id
	// "<follower>><followee source>", resolved when the followee arrives.
	ColImportPending = "import_pending_follows"
)

// ImportPolicy says what happens to a record whose natural key exists.
type ImportPolicy string

const (
	ImportSkip   ImportPolicy = "skip"
	ImportUpdate ImportPolicy = "update"
	ImportFail   ImportPolicy = "fail"
)

// Import result statuses.
const (
	ImportCreated = "created"
	ImportUpdated = "updated"
	ImportSkipped = "skipped"
	ImportError   = "error"
)

// ImportGroup is a group a record names; missing ones are created.
type ImportGroup struct {
	ID   int64
	Name string
}

// ImportUser is one decoded record.
type ImportUser struct {
	Namespace  string  // the format: "thinksns", "minapp", "userve"
	SourceID   int64   // the id in the source system (> 0): kept when free
	Profile    Profile // ID and ImportSource are set by the import
	Groups     []ImportGroup
	Followings []int64 // source ids of the users this one follows
	Balances   map[Account]int64
	// SetFields are the profile fields the record carries (document names),
	// which on_conflict=update overwrites; others stay as they are.
	SetFields []string
}

// Source is the record's natural key, "<format>:<source id>".
func (u *ImportUser) Source() string { return sourceKey(u.Namespace, u.SourceID) }

func sourceKey(ns string, id int64) string { return ns + ":" + strconv.FormatInt(id, 10) }

// ImportResult is the outcome of one record.
type ImportResult struct {
	Status string
	UserID int64
	Error  string
}

// ImportOptions steer one batch.
type ImportOptions struct {
	Policy ImportPolicy
	DryRun bool
}

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColImportPending, Name: "followee_src", Keys: bson.D{{Key: "followee_src", Value: 1}}},
	)
}

// importSlots bounds the batches one process imports at once: a batch
// keeps the store busy (one InsertMany, then a few workers), and many
// parallel batches would only make every operation slower until they time
// out. Others wait their turn (within their request's deadline).
var importSlots = make(chan struct{}, 2)

// bulkOpContext bounds one bulk write (an InsertMany of up to 1,000
// documents), which takes longer than a single-document operation.
func (s *Store) bulkOpContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 6*s.opTimeout)
}

// importWorkers bounds the records of one batch handled at once on the
// slow path (conflicts) and for balances.
const importWorkers = 8

// ImportUsers imports one batch; results are in the order of users. The
// error is for the batch as a whole (the store away): a retry of the same
// batch then finishes it, since every step is idempotent.
func (s *Store) ImportUsers(ctx context.Context, users []ImportUser, opt ImportOptions) ([]ImportResult, error) {
	results := make([]ImportResult, len(users))
	if len(users) == 0 {
		return results, nil
	}
	select {
	case importSlots <- struct{}{}:
		defer func() { <-importSlots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for an import slot: %v", ErrUnavailable, ctx.Err())
	}
	if opt.DryRun {
		err := s.forEach(ctx, len(users), func(i int) error {
			r, err := s.resolveImport(ctx, &users[i], opt, false)
			results[i] = r
			return err
		})
		return results, err
	}
	start := time.Now()
	phase := func(name string, extra ...any) {
		s.log.Debug("import phase", append([]any{"phase", name, "since_start", time.Since(start)}, extra...)...)
	}
	if err := s.importGroups(ctx, users); err != nil {
		return nil, err
	}
	if err := s.raiseImportSequence(ctx, users[0].Namespace, maxNamedID(users)); err != nil {
		return nil, err
	}
	phase("groups and sequence")
	evs, err := s.beginImportEvents(ctx, users)
	if err != nil {
		return nil, err
	}
	slow, err := s.insertBatch(ctx, users, results)
	if err != nil {
		return nil, err
	}
	defer s.settleImportEvents(ctx, evs, results)
	phase("insert", "refused", len(slow))
	err = s.forEach(ctx, len(slow), func(k int) error {
		i := slow[k]
		r, err := s.resolveImport(ctx, &users[i], opt, true)
		results[i] = r
		return err
	})
	if err != nil {
		return nil, err
	}
	phase("conflicts")
	if err := s.importFollows(ctx, users, results, opt); err != nil {
		return nil, err
	}
	phase("follows")
	err = s.importAllBalances(ctx, users, results, opt)
	phase("balances")
	return results, err
}

// finishes reports a record whose follows and balances are (re)applied:
// created or updated now, or skipped because an earlier run of the same
// import wrote it (which may have stopped before its follows).
func finishes(u *ImportUser, r ImportResult, opt ImportOptions) bool {
	switch r.Status {
	case ImportCreated, ImportUpdated:
		return true
	case ImportSkipped:
		return r.Error == ownImport
	}
	return false
}

// ownImport marks internally a skip of the record's own earlier import.
const ownImport = "\x00own"

// forEach runs f(0..n-1) on a few goroutines; the first store error wins.
func (s *Store) forEach(ctx context.Context, n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for w := 0; w < min(importWorkers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || ctx.Err() != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// maxNamedID is the largest id the batch names: its records' source ids
// and their followees'.
func maxNamedID(users []ImportUser) int64 {
	var m int64
	for i := range users {
		m = max(m, users[i].SourceID)
		for _, f := range users[i].Followings {
			m = max(m, f)
		}
	}
	return m
}

// importProfile builds the document of a new imported user with id.
func importProfile(u *ImportUser, id int64) *Profile {
	p := u.Profile
	p.ID = id
	p.ImportSource = u.Source()
	if p.Groups == nil {
		p.Groups = []int64{}
	}
	if p.Updated.IsZero() {
		p.Updated = p.Created
	}
	return &p
}

// insertBatch inserts every record with its source id, unordered, and
// returns the indexes the store refused. A source id that belonged to a
// deleted or merged-away user (a tombstone) is never written: such records
// go the slow way, which gives them a new id. The tombstones are read
// before the insert (the common case, no wasted write) and again after it:
// a deletion writes its tombstone before it removes the profile, so a user
// deleted in between is seen then, and the record moves off the id.
func (s *Store) insertBatch(ctx context.Context, users []ImportUser, results []ImportResult) ([]int, error) {
	ids := make([]int64, len(users))
	for i := range users {
		ids[i] = users[i].SourceID
	}
	buried, err := s.tombstonedAmong(ctx, ids)
	if err != nil {
		return nil, err
	}
	var docs []any
	var at []int // at[k]: the record of docs[k]
	now := s.Now()
	for i := range users {
		if users[i].Profile.Created.IsZero() {
			users[i].Profile.Created = now
		}
		if !buried[ids[i]] {
			docs = append(docs, importProfile(&users[i], users[i].SourceID))
			at = append(at, i)
		}
	}
	refused, err := s.insertUnordered(ctx, ColProfiles, docs)
	if err != nil {
		return nil, err
	}
	written := make([]int64, 0, len(docs))
	for k, i := range at {
		if !refused[k] {
			written = append(written, ids[i])
		}
	}
	late, err := s.tombstonedAmong(ctx, written)
	if err != nil {
		return nil, err
	}
	var slow []int
	for k, i := range at {
		u := &users[i]
		if late[u.SourceID] {
			if err := s.unwriteImported(ctx, u); err != nil {
				return nil, err
			}
			refused[k] = true
		}
		if refused[k] {
			continue
		}
		results[i] = ImportResult{Status: ImportCreated, UserID: u.SourceID}
		s.knownImportIDs(u.Namespace).add(u.SourceID)
	}
	for i := range users {
		if results[i].Status == "" {
			slow = append(slow, i)
		}
	}
	return slow, nil
}

// unwriteImported takes back a record written under an id that turned out
// to be a deleted user's. Nothing refers to it yet but this batch.
func (s *Store) unwriteImported(ctx context.Context, u *ImportUser) error {
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColProfiles).DeleteOne(octx, bson.D{{Key: FieldID, Value: u.SourceID}, {Key: FieldImportSource, Value: u.Source()}})
		return err
	})
	return classify(err)
}

// raiseSequence moves sequence past id. The counter's $max is not isolated
// on FerretDB (a concurrent update can write an older value back), so it is
// read back and raised again until it holds; InsertWithNextID also raises
// it from the collection's largest id when it meets a taken id.
func (s *Store) raiseSequence(ctx context.Context, sequence string, id int64) error {
	if id <= 0 {
		return nil
	}
	for attempt := 0; attempt < maxBusyAttempts; attempt++ {
		err := retryTransient(ctx, func() error {
			octx, cancel := s.opContext(ctx)
			defer cancel()
			_, err := s.col(ColCounters).UpdateOne(octx, bson.D{{Key: "_id", Value: sequence}},
				bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: id}}}}, options.UpdateOne().SetUpsert(true))
			if mongo.IsDuplicateKeyError(err) {
				return nil // a concurrent first upsert: checked below
			}
			return err
		})
		if err != nil {
			return classify(err)
		}
		var doc struct {
			Seq int64 `bson:"seq"`
		}
		octx, cancel := s.opContext(ctx)
		err = decodeOne(s.col(ColCounters).FindOne(octx, bson.D{{Key: "_id", Value: sequence}}), &doc)
		cancel()
		if err == nil && doc.Seq >= id {
			return nil
		}
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) && !transient(err) {
			return classify(err)
		}
		backoff(attempt)
	}
	return fmt.Errorf("%w: the %s sequence could not be raised to %d", ErrUnavailable, sequence, id)
}

// raiseSequenceToMax moves sequence past the largest _id of collection.
func (s *Store) raiseSequenceToMax(ctx context.Context, collection, sequence string) error {
	var doc struct {
		ID int64 `bson:"_id"`
	}
	octx, cancel := s.opContext(ctx)
	err := decodeOne(s.col(collection).FindOne(octx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "_id", Value: 1}})), &doc)
	cancel()
	if err != nil {
		return classify(err)
	}
	return s.raiseSequence(ctx, sequence, doc.ID)
}
