package store

// Import marks: how a new user is kept off the ids an import names.
//
// An import points follow edges at the source ids of followees it has not
// imported yet, and moves the profile sequence past them so that no new
// user takes one. On FerretDB that is not enough: the counter's updates
// are not isolated, so a signup racing the raise can still take such an id
// (a lost update writes an older value back), and on any store a signup
// that took its id just before the raise may insert its profile just after
// the import looked that id up and found it free. Either way the signup
// would inherit the followee's edges.
//
// So before an import raises the sequence it inserts a mark: a document
// whose _id is the highest id the batch names. Inserts are never lost. A
// user created with a new id checks, after its own insert, for a mark at
// or above its id; if there is one, it gives the id back (deletes its
// profile) and takes another above the mark. Of the two writes (mark, then
// the import's lookups; profile, then the signup's check) each side reads
// after it wrote, so one of them sees the other: either the signup moves
// away, or its profile was in before the mark and the import's lookup
// finds it and writes the edge as pending. A pending edge whose holder
// moved away is settled when the followee arrives (settlePending).

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ColImportMarks holds the highest id imports have named: _id = the id.
// Lower marks are pruned, so it holds one or a few documents.
const ColImportMarks = "import_marks"

// markImportTop records that an import names ids up to top.
func (s *Store) markImportTop(ctx context.Context, top int64) error {
	if err := s.insertIgnoringDuplicates(ctx, ColImportMarks, []any{bson.D{{Key: "_id", Value: top}}}); err != nil {
		return err
	}
	// Only marks below one just inserted go, so the highest always stays.
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.col(ColImportMarks).DeleteMany(octx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: top}}}}); err != nil {
		s.log.Warn("pruning import marks failed", "error", err)
	}
	return nil
}

// importMarkAtOrAbove is the highest mark >= id, or 0 if there is none.
func (s *Store) importMarkAtOrAbove(ctx context.Context, id int64) (int64, error) {
	var doc struct {
		ID int64 `bson:"_id"`
	}
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		return decodeOne(s.col(ColImportMarks).FindOne(octx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: id}}}},
			options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})), &doc)
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	return doc.ID, classify(err)
}

// insertProfileWithNextID inserts build(id) with the next user id that no
// import names (see the top of this file).
func (s *Store) insertProfileWithNextID(ctx context.Context, build func(id int64) any) (int64, error) {
	for attempt := 0; attempt < maxIDAttempts; attempt++ {
		id, err := s.InsertWithNextID(ctx, ColProfiles, ColProfiles, build)
		if err != nil {
			return 0, err
		}
		kept, err := s.keepUnlessNamed(ctx, id)
		if err != nil {
			return 0, err
		}
		if kept {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: no user id outside the ids imports name after %d attempts", ErrUnavailable, maxIDAttempts)
}

// keepUnlessNamed checks a profile just inserted with a new id against the
// import marks; if an import names the id, the profile is deleted again and
// the sequence moved past the mark. Nothing refers to the profile yet but
// edges an import wrote for that id, which belong to the imported user.
// The id of a deleted or merged-away user (FerretDB's counter can fall
// back) is given back the same way: it is never reused.
func (s *Store) keepUnlessNamed(ctx context.Context, id int64) (bool, error) {
	buried, err := s.Tombstoned(ctx, id)
	if err != nil {
		return false, err
	}
	if buried {
		s.log.Info("a new user got a deleted user's id; taking another", "user_id", id)
		return false, s.removeUnburied(ctx, id)
	}
	mark, err := s.importMarkAtOrAbove(ctx, id)
	if err != nil {
		// Keep it rather than lose the signup: the id is only at risk
		// while an import runs, and the error is logged.
		s.log.Warn("checking the import marks failed; keeping the id", "user_id", id, "error", err)
		return true, nil
	}
	if mark == 0 {
		return true, nil
	}
	s.log.Info("a new user's id is named by an import; taking another", "user_id", id, "mark", mark)
	if err := s.deleteByID(ctx, ColProfiles, id); err != nil {
		return false, err
	}
	return false, s.raiseSequence(ctx, ColProfiles, mark)
}

// settlePending turns the pending edges of followees that arrived with
// their source id (the id's holder moved away or was deleted meanwhile)
// into edges. arrived maps source keys to user ids.
func (s *Store) settlePending(ctx context.Context, arrived map[string]int64) error {
	if len(arrived) == 0 {
		return nil
	}
	sources := make([]string, 0, len(arrived))
	for src := range arrived {
		sources = append(sources, src)
	}
	var pend []pendingFollowDoc
	if err := s.findAll(ctx, ColImportPending, bson.D{{Key: "followee_src", Value: bson.D{{Key: "$in", Value: sources}}}}, &pend); err != nil {
		return err
	}
	if len(pend) == 0 {
		return nil
	}
	now := s.Now()
	edges := make([]any, 0, len(pend))
	for _, p := range pend {
		if id := arrived[p.FolloweeSrc]; id != p.Follower {
			edges = append(edges, newImportEdge(p.Follower, id, "", now))
		}
	}
	if err := s.insertIgnoringDuplicates(ctx, ColFollows, edges); err != nil {
		return err
	}
	for _, p := range pend {
		if err := s.deleteByID(ctx, ColImportPending, p.ID); err != nil {
			return err
		}
	}
	return nil
}
