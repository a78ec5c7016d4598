package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
)

// End-user account writes on the profile document that need more than
// UpdateProfile's $set: the password (which ends older tokens) and the
// phone/email bindings (unset, not emptied, so the sparse unique indexes
// keep ignoring users without one).

// SetPasswordHash stores a new password hash and bumps token_epoch, so that
// every token issued before stops working.
func (s *Store) SetPasswordHash(ctx context.Context, id int64, hash string) (*Profile, error) {
	if hash == "" {
		return nil, errors.New("store: empty password hash")
	}
	return s.updateProfileAs(ctx, id, bson.D{
		{Key: "$set", Value: bson.D{{Key: "password_hash", Value: hash}, {Key: FieldUpdatedAt, Value: s.Now()}}},
		{Key: "$inc", Value: bson.D{{Key: "token_epoch", Value: int64(1)}}},
	}, v1alpha1.EventUserPasswordChanged, nil)
}

func contactFields(field string) (string, error) {
	switch field {
	case FieldEmail:
		return FieldEmailVerified, nil
	case FieldPhone:
		return FieldPhoneVerified, nil
	}
	return "", fmt.Errorf("store: %q is not a contact field", field)
}

// SetContact binds a verified phone or email (field is FieldPhone or
// FieldEmail). A value another user holds is a *ConflictError naming field.
func (s *Store) SetContact(ctx context.Context, id int64, field, value string) (*Profile, error) {
	verified, err := contactFields(field)
	if err != nil {
		return nil, err
	}
	if value == "" {
		return nil, errors.New("store: empty contact value")
	}
	p, err := s.updateProfile(ctx, id, bson.D{{Key: "$set", Value: bson.D{
		{Key: field, Value: value}, {Key: verified, Value: true}, {Key: FieldUpdatedAt, Value: s.Now()},
	}}})
	var ce *ConflictError
	if errors.As(err, &ce) {
		ce.Field = field
	}
	return p, err
}

// UnsetContact removes the phone or email binding.
func (s *Store) UnsetContact(ctx context.Context, id int64, field string) (*Profile, error) {
	verified, err := contactFields(field)
	if err != nil {
		return nil, err
	}
	return s.updateProfile(ctx, id, bson.D{
		{Key: "$unset", Value: bson.D{{Key: field, Value: ""}}},
		{Key: "$set", Value: bson.D{{Key: verified, Value: false}, {Key: FieldUpdatedAt, Value: s.Now()}}},
	})
}

// ProfilesByIDs returns the existing profiles among ids, keyed by id.
func (s *Store) ProfilesByIDs(ctx context.Context, ids []int64) (map[int64]*Profile, error) {
	out := make(map[int64]*Profile, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColProfiles).Find(ctx, bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, classify(err)
	}
	var ps []*Profile
	if err := decodeAll(ctx, cur, &ps); err != nil {
		return nil, classify(err)
	}
	for _, p := range ps {
		if p.Tombstone == nil { // being deleted or merged away: gone
			p.normalize()
			out[p.ID] = p
		}
	}
	return out, nil
}

// RehashPassword replaces an imported (or weaker) hash by the tenant's
// own after a login has checked the password against it. Tokens stay
// valid: the password did not change. It only writes while the stored
// hash is still old, so a concurrent password change is never undone.
func (s *Store) RehashPassword(ctx context.Context, id int64, old, hash string) error {
	if hash == "" || old == "" {
		return errors.New("store: empty password hash")
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColProfiles).UpdateOne(ctx,
		bson.D{{Key: FieldID, Value: id}, {Key: "password_hash", Value: old}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "password_hash", Value: hash}}}})
	return classify(err)
}
