package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
)

// Ban is why and until when a user may not sign in or use a token
// (docs/server.md, "Bans"). It is part of the profile, so the one profile
// read every token check makes already sees it: a ban holds on the next
// request, on every replica. It lifts itself at Until, which the code
// compares (no TTL index: FerretDB has none); an expired ban stays in the
// document until the next ban or unban and means nothing.
type Ban struct {
	Reason string    `bson:"reason"`
	At     time.Time `bson:"at"`
	// Until is when the ban lifts; BanForever for a ban without expiry.
	Until time.Time `bson:"until"`
}

// BanForever is the Until of a ban without expiry: one date rather than an
// absent field, so that "banned now" is one range condition
// (FieldBanUntil > now) that filters can say.
var BanForever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// FieldBanUntil is the document path of a ban's end, for filters.
const FieldBanUntil = "ban.until"

func init() {
	RegisterIndexes(IndexSpec{Collection: ColProfiles, Name: "ban_until", Keys: bson.D{{Key: FieldBanUntil, Value: 1}, {Key: FieldID, Value: 1}}})
}

// Permanent reports a ban without expiry.
func (b *Ban) Permanent() bool { return !b.Until.Before(BanForever) }

// ActiveBan is p's ban if it holds at now, else nil.
func (p *Profile) ActiveBan(now time.Time) *Ban {
	if p.Ban != nil && now.Before(p.Ban.Until) {
		return p.Ban
	}
	return nil
}

// BanUser bans user id until `until` (BanForever: no expiry) for reason,
// replacing any ban it had; the profile comes back. ErrNotFound: no such
// (live) user.
func (s *Store) BanUser(ctx context.Context, id int64, reason string, until time.Time) (*Profile, error) {
	if _, err := s.GetProfile(ctx, id); err != nil {
		return nil, err
	}
	now := s.Now()
	ban := Ban{Reason: reason, At: now, Until: until.UTC()}
	var expires any // null: no expiry
	if !ban.Permanent() {
		expires = ban.Until.Unix()
	}
	return s.updateProfileAs(ctx, id, bson.D{{Key: "$set", Value: bson.D{{Key: "ban", Value: ban}, {Key: FieldUpdatedAt, Value: now}}}},
		v1alpha1.EventUserBanned, map[string]any{"reason": reason, "expires_at": expires})
}

// UnbanUser lifts user id's ban, if any; the profile comes back.
func (s *Store) UnbanUser(ctx context.Context, id int64) (*Profile, error) {
	p, err := s.GetProfile(ctx, id)
	if err != nil || p.Ban == nil {
		return p, err
	}
	return s.updateProfile(ctx, id, bson.D{
		{Key: "$unset", Value: bson.D{{Key: "ban", Value: ""}}},
		{Key: "$set", Value: bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}},
	})
}
