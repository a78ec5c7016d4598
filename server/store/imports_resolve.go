package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// One imported record against the users already there: looking it up by id
// and unique keys, and applying the batch's on_conflict policy (create, skip,
// update or fail).

// importMatch is what a record's natural keys find.
type importMatch struct {
	byUser  map[int64][]string // user id -> the keys that found it
	idTaken bool               // a profile holds the source id
	own     int64              // the user this very import wrote, if any
}

// lookupImport finds the users the record's natural keys point at.
func (s *Store) lookupImport(ctx context.Context, u *ImportUser) (*importMatch, error) {
	m := &importMatch{byUser: map[int64][]string{}}
	byID, err := s.importLookup(ctx, bson.D{{Key: FieldID, Value: u.SourceID}})
	if err != nil {
		return nil, err
	}
	if byID == nil {
		// The id of a deleted or merged-away user is never given out again.
		if m.idTaken, err = s.Tombstoned(ctx, u.SourceID); err != nil {
			return nil, err
		}
	}
	if byID != nil {
		m.idTaken = true
		if byID.ImportSource == u.Source() && byID.Tombstone == nil {
			// The common slow path: a replayed, resumed or concurrent
			// batch. The record is this user; any of its keys that another
			// user holds shows up as a refused update, not here.
			m.own = byID.ID
			m.byUser[m.own] = []string{"source id"}
			return m, nil
		}
	}
	if m.own == 0 {
		own, err := s.importLookup(ctx, bson.D{{Key: FieldImportSource, Value: u.Source()}})
		if err != nil {
			return nil, err
		}
		if own != nil && own.Tombstone == nil {
			m.own = own.ID
		}
	}
	if m.own != 0 {
		m.byUser[m.own] = append(m.byUser[m.own], "source id")
	}
	p := &u.Profile
	for _, kv := range []struct{ key, field, value string }{
		{"openid", FieldOpenID, p.OpenID}, {"unionid", FieldUnionID, p.UnionID},
		{"_username", FieldUsername, p.Username}, {"_email", FieldEmail, p.Email}, {"_phone", FieldPhone, p.Phone},
	} {
		if kv.value == "" {
			continue
		}
		hit, err := s.importLookup(ctx, bson.D{{Key: kv.field, Value: kv.value}})
		if err != nil {
			return nil, err
		}
		if hit != nil {
			m.byUser[hit.ID] = append(m.byUser[hit.ID], kv.key)
		}
	}
	return m, nil
}

func (s *Store) importLookup(ctx context.Context, filter bson.D) (*Profile, error) {
	var p Profile
	err := retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		// No projection: with one, FerretDB 1.24 does not serve _id
		// equality from the primary key and scans the collection.
		return decodeOne(s.col(ColProfiles).FindOne(octx, filter), &p)
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	return &p, nil
}

// maxResolveAttempts bounds the rounds of one record racing other imports.
const maxResolveAttempts = 4

// resolveImport handles one record the fast insert refused (or, in a dry
// run, every record): it looks its keys up and applies the policy, or
// creates it, possibly under another id. write=false only predicts.
func (s *Store) resolveImport(ctx context.Context, u *ImportUser, opt ImportOptions, write bool) (ImportResult, error) {
	for attempt := 0; attempt < maxResolveAttempts; attempt++ {
		m, err := s.lookupImport(ctx, u)
		if err != nil {
			return ImportResult{}, err
		}
		switch len(m.byUser) {
		case 0:
			if !write {
				return ImportResult{Status: ImportCreated, UserID: u.SourceID}, nil
			}
			r, err := s.createImported(ctx, u, m.idTaken)
			if errors.Is(err, ErrConflict) {
				continue // a concurrent import or user took a key: look again
			}
			return r, err
		case 1:
			var id int64
			var keys []string
			for k, v := range m.byUser {
				id, keys = k, v
			}
			return s.applyPolicy(ctx, u, opt, id, keys, id == m.own, write)
		default:
			return ImportResult{Status: ImportError, Error: conflictSummary(m.byUser)}, nil
		}
	}
	return ImportResult{Status: ImportError, Error: "its keys kept changing under concurrent writes; retry the record"}, nil
}

func conflictSummary(byUser map[int64][]string) string {
	ids := make([]int64, 0, len(byUser))
	for id := range byUser {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s match user %d", strings.Join(byUser[id], ", "), id)
	}
	return "the record's keys belong to different users: " + strings.Join(parts, "; ")
}

// createImported inserts a record nobody holds a key of: with its source
// id if free, else with the next id and a remap.
func (s *Store) createImported(ctx context.Context, u *ImportUser, idTaken bool) (ImportResult, error) {
	if !idTaken {
		err := retryTransient(ctx, func() error { return s.insert(ctx, ColProfiles, importProfile(u, u.SourceID)) })
		if err == nil {
			return ImportResult{Status: ImportCreated, UserID: u.SourceID}, nil
		}
		return ImportResult{}, err
	}
	id, err := s.insertProfileWithNextID(ctx, func(id int64) any { return importProfile(u, id) })
	if err != nil {
		return ImportResult{}, err
	}
	if err := s.remapFollowee(ctx, u.Source(), u.SourceID, id); err != nil {
		return ImportResult{}, err
	}
	return ImportResult{Status: ImportCreated, UserID: id}, nil
}

// applyPolicy handles a record whose keys found user id.
func (s *Store) applyPolicy(ctx context.Context, u *ImportUser, opt ImportOptions, id int64, keys []string, own, write bool) (ImportResult, error) {
	switch opt.Policy {
	case ImportFail:
		if own {
			return ImportResult{Status: ImportError, UserID: id, Error: fmt.Sprintf("already imported as user %d", id)}, nil
		}
		return ImportResult{Status: ImportError, UserID: id, Error: fmt.Sprintf("%s already belong(s) to user %d", strings.Join(keys, ", "), id)}, nil
	case ImportUpdate:
		if !write {
			return ImportResult{Status: ImportUpdated, UserID: id}, nil
		}
		if err := s.updateImported(ctx, u, id, own); err != nil {
			var ce *ConflictError
			if errors.As(err, &ce) {
				return ImportResult{Status: ImportError, UserID: id, Error: "update refused: " + ce.Error()}, nil
			}
			return ImportResult{}, err
		}
		return ImportResult{Status: ImportUpdated, UserID: id}, nil
	}
	r := ImportResult{Status: ImportSkipped, UserID: id}
	if own && write {
		r.Error = ownImport
	}
	return r, nil
}

// updateImported overwrites the fields the record carries. Values come
// from the record (times too), so repeating it changes nothing.
func (s *Store) updateImported(ctx context.Context, u *ImportUser, id int64, own bool) error {
	raw, err := bson.Marshal(importProfile(u, id))
	if err != nil {
		return err
	}
	var doc bson.M
	if err := bson.Unmarshal(raw, &doc); err != nil {
		return err
	}
	set, unset := bson.D{}, bson.D{}
	for _, f := range u.SetFields {
		if v, ok := doc[f]; ok {
			set = append(set, bson.E{Key: f, Value: v})
		} else if isUniqueField(f) {
			unset = append(unset, bson.E{Key: f, Value: ""})
		}
	}
	for name, v := range u.Profile.Custom {
		set = append(set, bson.E{Key: CustomFieldPath(name), Value: v})
	}
	if !own {
		// The user was not imported by this source: only claim the source
		// key if the user has none (checked by the filter, so the write of
		// the other fields still happens through the first update).
		defer func() {
			_ = retryTransient(ctx, func() error {
				octx, cancel := s.opContext(ctx)
				defer cancel()
				_, err := s.col(ColProfiles).UpdateOne(octx,
					bson.D{{Key: FieldID, Value: id}, {Key: FieldImportSource, Value: bson.D{{Key: "$exists", Value: false}}}},
					bson.D{{Key: "$set", Value: bson.D{{Key: FieldImportSource, Value: u.Source()}}}})
				return err
			})
		}()
	}
	update := bson.D{}
	if len(set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	if len(update) == 0 {
		return nil
	}
	err = retryTransient(ctx, func() error {
		octx, cancel := s.opContext(ctx)
		defer cancel()
		_, err := s.col(ColProfiles).UpdateOne(octx, bson.D{{Key: FieldID, Value: id}}, update)
		return err
	})
	err = classify(err)
	var ce *ConflictError
	if errors.As(err, &ce) && ce.Field == "" {
		p := importProfile(u, id)
		ce.Field = s.takenField(ctx, p)
	}
	return err
}

func isUniqueField(f string) bool {
	switch f {
	case FieldOpenID, FieldUnionID, FieldUsername, FieldEmail, FieldPhone:
		return true
	}
	return false
}
