package store

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
)

// UpdateOwnFields is a user's edit of their own profile in one update (so
// it applies whole or not at all): builtins sets document fields by their
// bson names, custom sets custom fields and unset removes custom fields;
// updated_at is bumped. For the MinApp SDK dialect's currentUser.update().
func (s *Store) UpdateOwnFields(ctx context.Context, id int64, builtins, custom map[string]any, unset []string) (*Profile, error) {
	setDoc := bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}
	for k, v := range builtins {
		if k == FieldID {
			return nil, errors.New("store: the id cannot change")
		}
		setDoc = append(setDoc, bson.E{Key: k, Value: v})
	}
	for name, v := range custom {
		setDoc = append(setDoc, bson.E{Key: CustomFieldPath(name), Value: v})
	}
	update := bson.D{{Key: "$set", Value: setDoc}}
	if len(unset) > 0 {
		u := bson.D{}
		for _, name := range unset {
			u = append(u, bson.E{Key: CustomFieldPath(name), Value: ""})
		}
		update = append(update, bson.E{Key: "$unset", Value: u})
	}
	return s.updateProfile(ctx, id, update)
}

// UpdateAccount changes a user's account in one update, so a refused value
// (one another user holds: a *ConflictError) leaves everything as it was:
// set holds username, email, phone and their verification flags by
// document field; a non-empty hash replaces the password and bumps
// token_epoch, ending every older token (as SetPasswordHash).
func (s *Store) UpdateAccount(ctx context.Context, id int64, set map[string]any, hash string) (*Profile, error) {
	setDoc := bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}
	for k, v := range set {
		if k == FieldID || k == "password_hash" || k == "token_epoch" {
			return nil, errors.New("store: UpdateAccount cannot set " + k)
		}
		setDoc = append(setDoc, bson.E{Key: k, Value: v})
	}
	update := bson.D{}
	if hash != "" {
		setDoc = append(setDoc, bson.E{Key: "password_hash", Value: hash})
		update = append(update, bson.E{Key: "$inc", Value: bson.D{{Key: "token_epoch", Value: int64(1)}}})
	}
	update = append(bson.D{{Key: "$set", Value: setDoc}}, update...)
	if hash == "" {
		return s.updateProfile(ctx, id, update)
	}
	pw, err := s.beginEvent(ctx, v1alpha1.EventUserPasswordChanged, id, "", nil)
	if err != nil {
		return nil, err
	}
	p, err := s.updateProfile(ctx, id, update)
	pw.settle(ctx, err)
	return p, err
}
