package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// IndexSpec is one index of one collection. Every file of this package
// registers its collections' indexes from init with RegisterIndexes, so
// EnsureIndexes creates all of them.
type IndexSpec struct {
	Collection string
	Name       string // stable name; unique indexes are looked up by it on conflicts
	Keys       bson.D // e.g. {{"created_at", 1}, {"_id", 1}}
	Unique     bool   // unique indexes are also sparse: absent values do not collide
	Field      string // for unique indexes: the field reported in ConflictError
	Optional   bool   // failure to create it is logged, not fatal (e.g. index count limits)
}

var (
	indexMu    sync.Mutex
	indexSpecs []IndexSpec
)

// RegisterIndexes adds index specs; call it from init.
func RegisterIndexes(specs ...IndexSpec) {
	indexMu.Lock()
	defer indexMu.Unlock()
	indexSpecs = append(indexSpecs, specs...)
}

func registeredIndexes() []IndexSpec {
	indexMu.Lock()
	defer indexMu.Unlock()
	return append([]IndexSpec(nil), indexSpecs...)
}

// uniqueFieldByIndex maps unique index names to their field, for conflicts.
func uniqueFieldByIndex() map[string]string {
	m := map[string]string{}
	for _, sp := range registeredIndexes() {
		if sp.Unique {
			m[sp.Name] = sp.Field
		}
	}
	return m
}

// wantedIndexes are the registered indexes and the custom-field ones.
func (s *Store) wantedIndexes() []IndexSpec {
	specs := registeredIndexes()
	for _, name := range s.customFields {
		specs = append(specs, IndexSpec{
			Collection: ColProfiles, Name: "custom_" + name,
			Keys: bson.D{{Key: "custom." + name, Value: 1}, {Key: "_id", Value: 1}}, Optional: true,
		})
	}
	return specs
}

// EnsureIndexes makes every registered index and the custom-field indexes
// exist, and drops the retired ones (ensureIndexes); Ready and Indexed
// then hold. With an IndexMemo that verified them within IndexRecheck, it
// sends nothing.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	if err := s.ensureIndexesUnlessRemembered(ctx, true); err != nil {
		return err
	}
	s.constrained.Store(true)
	s.indexed.Store(true)
	return nil
}

// EnsureUniqueIndexes makes the unique indexes exist, the ones that keep
// the data right (one openid, username, e-mail, phone per user, one ledger
// step...): Ready holds after it, and the store may serve. The other
// indexes serve queries; EnsureIndexes makes them. A pooled tenant's
// activation waits for this one only (the unique indexes are on 4 of its
// 18 collections) and leaves the rest to its server's start-up duties.
func (s *Store) EnsureUniqueIndexes(ctx context.Context) error {
	if err := s.ensureIndexesUnlessRemembered(ctx, false); err != nil {
		return err
	}
	s.constrained.Store(true)
	return nil
}

// ensureIndexesUnlessRemembered checks every index (all) or the unique
// ones, unless the IndexMemo verified them within IndexRecheck, and
// records the outcome in the memo.
func (s *Store) ensureIndexesUnlessRemembered(ctx context.Context, all bool) error {
	if s.indexMemo.fresh(s.indexKey, all, s.now()) {
		return nil
	}
	specs := s.wantedIndexes()
	if !all {
		var unique []IndexSpec
		for _, sp := range specs {
			if sp.Unique {
				unique = append(unique, sp)
			}
		}
		specs = unique
	}
	if err := s.ensureIndexes(ctx, specs, all); err != nil {
		s.indexMemo.failed()
		return err
	}
	s.indexMemo.verified(s.indexKey, all, s.now())
	return nil
}

// ensureIndexes makes specs exist (and, with retire, drops the retired
// indexes). It first lists each collection's indexes and creates only
// those missing or different from their spec: a database whose indexes are
// current costs one listIndexes per collection (18 reads for all) instead
// of one createIndexes per index (55 writes), which was most of what a
// pooled tenant's activation did. The list is read at every check, so an
// index dropped or changed by hand is found and made again, never assumed;
// only a store with an IndexMemo skips checks, for IndexRecheck after the
// last one. Creating an existing identical index is a no-op, so replicas
// starting at once are safe.
func (s *Store) ensureIndexes(ctx context.Context, specs []IndexSpec, retire bool) error {
	existing := map[string]map[string]listedIndex{} // collection -> name -> index
	for _, sp := range specs {
		if _, listed := existing[sp.Collection]; listed {
			continue
		}
		idx, err := s.listIndexes(ctx, sp.Collection)
		if err != nil {
			return fmt.Errorf("store: listing the indexes of %s: %w", sp.Collection, err)
		}
		existing[sp.Collection] = idx
	}
	// FerretDB reports no index as sparse; MongoDB reports ours so.
	reportsSparse := false
	for _, idx := range existing {
		for _, l := range idx {
			reportsSparse = reportsSparse || l.Sparse
		}
	}
	for _, sp := range specs {
		have, exists := existing[sp.Collection][sp.Name]
		var err error
		switch {
		case exists && have.matches(sp, reportsSparse):
			continue
		case exists:
			// Changed by hand or by another version: creating ours over it
			// fails on MongoDB and passes silently on FerretDB, which would
			// leave, say, a unique index not unique. Both refuse here.
			err = fmt.Errorf("an index of this name exists with other keys or options (%v, unique %v); drop it and userve makes it again",
				have.Key, have.Unique)
		default:
			err = s.createIndex(ctx, sp)
		}
		if err != nil {
			if sp.Optional && !errors.Is(err, ErrUnavailable) {
				s.log.Warn("optional index not created", "collection", sp.Collection, "index", sp.Name, "error", err)
				continue
			}
			return fmt.Errorf("store: index %s.%s: %w", sp.Collection, sp.Name, err)
		}
	}
	for _, r := range retiredIndexes {
		if !retire {
			break
		}
		idx, listed := existing[r.collection]
		if !listed {
			var err error
			if idx, err = s.listIndexes(ctx, r.collection); err != nil {
				return fmt.Errorf("store: listing the indexes of %s: %w", r.collection, err)
			}
		}
		if _, ok := idx[r.name]; !ok {
			continue
		}
		if err := s.dropIndex(ctx, r.collection, r.name); err != nil {
			return fmt.Errorf("store: dropping the retired index %s.%s: %w", r.collection, r.name, err)
		}
	}
	return nil
}

// listedIndex is one index as listIndexes reports it.
type listedIndex struct {
	Name   string `bson:"name"`
	Key    bson.D `bson:"key"`
	Unique bool   `bson:"unique"`
	Sparse bool   `bson:"sparse"`
}

// matches reports whether the index is the one sp describes: same keys in
// the same order and directions, same uniqueness, and unique ones sparse
// where the store reports sparseness at all.
func (l listedIndex) matches(sp IndexSpec, reportsSparse bool) bool {
	if l.Unique != sp.Unique || (reportsSparse && l.Sparse != sp.Unique) || len(l.Key) != len(sp.Keys) {
		return false
	}
	return slices.EqualFunc(l.Key, sp.Keys, func(a, b bson.E) bool {
		return a.Key == b.Key && direction(a.Value) == direction(b.Value)
	})
}

// direction normalizes an index key's direction: stores answer 1 as
// int32, int64 or double.
func direction(v any) float64 {
	switch d := v.(type) {
	case int32:
		return float64(d)
	case int64:
		return float64(d)
	case int:
		return float64(d)
	case float64:
		return d
	}
	return 0 // a text or hashed index: never one of ours
}

// listIndexes is collection's indexes by name; none when the collection
// does not exist yet.
func (s *Store) listIndexes(ctx context.Context, collection string) (map[string]listedIndex, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(collection).Indexes().List(ctx)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == 26 { // NamespaceNotFound
		return map[string]listedIndex{}, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	var all []listedIndex
	if err := decodeAll(ctx, cur, &all); err != nil {
		return nil, classify(err)
	}
	byName := make(map[string]listedIndex, len(all))
	for _, l := range all {
		byName[l.Name] = l
	}
	return byName, nil
}

// retiredIndexes were created by earlier versions and cost every write
// while serving no query now; EnsureIndexes drops them.
var retiredIndexes = []struct{ collection, name string }{
	// Imports find the edges to re-point by followee (imports_links.go).
	{ColFollows, "followee_src"},
}

// dropIndex drops an index if it exists.
func (s *Store) dropIndex(ctx context.Context, collection, name string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err := s.col(collection).Indexes().DropOne(ctx, name)
	var ce mongo.CommandError
	if errors.As(err, &ce) && (ce.Code == 26 || ce.Code == 27) { // NamespaceNotFound, IndexNotFound
		return nil
	}
	return classify(err)
}

func (s *Store) createIndex(ctx context.Context, sp IndexSpec) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	o := options.Index().SetName(sp.Name)
	if sp.Unique {
		o.SetUnique(true).SetSparse(true)
	}
	_, err := s.col(sp.Collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: sp.Keys, Options: o})
	return classify(err)
}
