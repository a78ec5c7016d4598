package store

// Fresh id ranges: ids that no user outside an import can hold, so that an
// import's followee lookups can skip them (see importSources).
//
// A user who did not come in through an import with that very source id
// got their id from the profile sequence (signups, remapped imports) or is
// an import of another format. Every such id was at most the sequence's
// value when it was taken, and imports raise the sequence before they
// write. So when a batch raises the sequence from before to top, no id in
// (before, top] is held yet by anybody but imports, and none will be taken
// from the sequence later: it is past them.
//
// FerretDB does not isolate concurrent updates of the counter. A signup
// racing the raise may still take before+1, before+2, ...: the lowest
// freshMargin ids of a range are therefore looked up as before. If the
// counter is ever seen below a value this process raised it to (a lost
// update wrote an older value back, and signups may have taken ids from
// there), every range is forgotten and lookups resume for all ids.

import (
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// freshMargin is how many ids above the counter's old value stay looked
// up, for signups that raced the raise.
const freshMargin = 1024

type idRange struct{ lo, hi int64 } // lo < id <= hi

// freshIDs are the fresh ranges of one import format in this process.
type freshIDs struct {
	mu      sync.Mutex
	ranges  []idRange
	lastTop int64 // the highest value this process raised the counter to
}

func (f *freshIDs) has(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.ranges {
		if id > r.lo && id <= r.hi {
			return true
		}
	}
	return false
}

// observe records one raise of the counter from before to (at least) top.
func (f *freshIDs) observe(before, top int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if before < f.lastTop {
		f.ranges = nil // the counter went back: trust no range
	} else if lo := before + freshMargin; top > lo {
		f.ranges = append(f.ranges, idRange{lo: lo, hi: top})
	}
	f.lastTop = max(f.lastTop, top)
}

func (s *Store) freshImportIDs(ns string) *freshIDs {
	f, _ := s.importFresh.LoadOrStore(ns, &freshIDs{})
	return f.(*freshIDs)
}

// raiseImportSequence moves the profile sequence past top, the largest id
// a batch of format ns names, and records the fresh range it opened.
// Raises of this process run one at a time, so that each sees the value
// the previous one left.
func (s *Store) raiseImportSequence(ctx context.Context, ns string, top int64) error {
	if top <= 0 {
		return nil
	}
	s.importSeqMu.Lock()
	defer s.importSeqMu.Unlock()
	if err := s.markImportTop(ctx, top); err != nil {
		return err
	}
	before, err := s.raiseSequenceReturningOld(ctx, ColProfiles, top)
	if err != nil {
		return err
	}
	// Read back and raised again until it holds (see raiseSequence).
	if err := s.raiseSequence(ctx, ColProfiles, top); err != nil {
		return err
	}
	s.freshImportIDs(ns).observe(before, top)
	return nil
}

// raiseSequenceReturningOld applies $max and returns the value it found
// (0: no counter yet).
func (s *Store) raiseSequenceReturningOld(ctx context.Context, sequence string, id int64) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		return decodeOne(s.col(ColCounters).FindOneAndUpdate(octx, bson.D{{Key: "_id", Value: sequence}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: id}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before)), &doc)
	})
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, nil // created by this upsert
	case mongo.IsDuplicateKeyError(err):
		// A concurrent first upsert: the counter exists now, its old
		// value unknown; claim no range.
		return id, nil
	case err != nil:
		return 0, classify(err)
	}
	return doc.Seq, nil
}
