package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/api/v1alpha1"
)

// Profile is one user: the one document both dialects read and write, in
// the profiles collection with _id = user id.
//
// Unique fields (openid, unionid, username, email, phone) are omitted when
// empty, because their unique indexes are sparse: only absent values may
// repeat. Other strings are always stored, so "" compares as "".
type Profile struct {
	ID int64 `bson:"_id"`

	// Management (MinApp) fields.
	Nickname string    `bson:"nickname"`
	Avatar   string    `bson:"avatar"`
	Gender   int64     `bson:"gender"` // 0 unknown, 1 male, 2 female (ThinkSNS "sex")
	City     string    `bson:"city"`
	Province string    `bson:"province"`
	Country  string    `bson:"country"`
	Language string    `bson:"language"`
	OpenID   string    `bson:"openid,omitempty"`
	UnionID  string    `bson:"unionid,omitempty"`
	Groups   []int64   `bson:"groups"`
	Created  time.Time `bson:"created_at"`
	Updated  time.Time `bson:"updated_at"`
	// Custom holds the tenant's custom fields, values as JSON decodes them:
	// string, int64, float64, bool, time.Time (date fields), []any,
	// map[string]any.
	Custom map[string]any `bson:"custom,omitempty"`

	// End-user (ThinkSNS Plus) fields.
	Username        string `bson:"username,omitempty"` // "_username" in management output, "name" in ThinkSNS
	Email           string `bson:"email,omitempty"`    // stored lower case
	Phone           string `bson:"phone,omitempty"`
	EmailVerified   bool   `bson:"email_verified"`
	PhoneVerified   bool   `bson:"phone_verified"`
	PasswordHash    string `bson:"password_hash,omitempty"` // never output
	Bio             string `bson:"bio"`
	Location        string `bson:"location"`
	BG              string `bson:"bg"`
	FollowersCount  int64  `bson:"followers_count"`
	FollowingsCount int64  `bson:"followings_count"`
	// TokenEpoch is bumped by a password change or reset; tokens carrying an
	// older epoch are dead.
	TokenEpoch int64 `bson:"token_epoch"`
	// Anonymous marks a user made by the MinApp SDK's anonymous login
	// (server/hserve): no account, only a session.
	Anonymous bool `bson:"anonymous,omitempty"`

	// ImportSource is "<format>:<source id>" for an imported user: the
	// natural key a retried import finds it by (see imports.go).
	ImportSource string `bson:"import_source,omitempty"`

	// Ban, when set and not past its Until, keeps the user out (bans.go).
	Ban *Ban `bson:"ban,omitempty"`

	// Tombstone is set while the user is being deleted or merged away
	// (tombstones.go); such a profile is not found by GetProfile.
	Tombstone *ProfileTombstone `bson:"tombstone,omitempty"`

	// CreatedEvent is the outbox entry of the user's creation (events.go).
	CreatedEvent int64 `bson:"created_event,omitempty"`
}

// Profile document fields, for filters and sorts.
const (
	FieldID              = "_id"
	FieldNickname        = "nickname"
	FieldAvatar          = "avatar"
	FieldGender          = "gender"
	FieldCity            = "city"
	FieldProvince        = "province"
	FieldCountry         = "country"
	FieldLanguage        = "language"
	FieldOpenID          = "openid"
	FieldUnionID         = "unionid"
	FieldGroups          = "groups"
	FieldCreatedAt       = "created_at"
	FieldUpdatedAt       = "updated_at"
	FieldUsername        = "username"
	FieldEmail           = "email"
	FieldPhone           = "phone"
	FieldEmailVerified   = "email_verified"
	FieldPhoneVerified   = "phone_verified"
	FieldBio             = "bio"
	FieldLocation        = "location"
	FieldFollowersCount  = "followers_count"
	FieldFollowingsCount = "followings_count"
	FieldImportSource    = "import_source"
)

// CustomFieldPath is the document path of a custom field.
func CustomFieldPath(name string) string { return "custom." + name }

func init() {
	RegisterIndexes(
		// Unique identities; sparse so that users without one do not collide.
		IndexSpec{Collection: ColProfiles, Name: "openid_unique", Keys: bson.D{{Key: FieldOpenID, Value: 1}}, Unique: true, Field: FieldOpenID},
		IndexSpec{Collection: ColProfiles, Name: "unionid_unique", Keys: bson.D{{Key: FieldUnionID, Value: 1}}, Unique: true, Field: FieldUnionID},
		IndexSpec{Collection: ColProfiles, Name: "username_unique", Keys: bson.D{{Key: FieldUsername, Value: 1}}, Unique: true, Field: FieldUsername},
		IndexSpec{Collection: ColProfiles, Name: "email_unique", Keys: bson.D{{Key: FieldEmail, Value: 1}}, Unique: true, Field: FieldEmail},
		IndexSpec{Collection: ColProfiles, Name: "phone_unique", Keys: bson.D{{Key: FieldPhone, Value: 1}}, Unique: true, Field: FieldPhone},
		IndexSpec{Collection: ColProfiles, Name: "import_source_unique", Keys: bson.D{{Key: FieldImportSource, Value: 1}}, Unique: true, Field: FieldImportSource},
		// Sorts (with _id as tie-break, so pages are stable) and range filters.
		IndexSpec{Collection: ColProfiles, Name: "created_at", Keys: bson.D{{Key: FieldCreatedAt, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "updated_at", Keys: bson.D{{Key: FieldUpdatedAt, Value: 1}, {Key: FieldID, Value: 1}}},
		// Equality filters, with _id after them so that the default order (by
		// id) needs no in-memory sort. gender also leads a compound that serves
		// the seed's "gender=1&order_by=-created_at".
		IndexSpec{Collection: ColProfiles, Name: "gender_created_at", Keys: bson.D{{Key: FieldGender, Value: 1}, {Key: FieldCreatedAt, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "gender_id", Keys: bson.D{{Key: FieldGender, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "nickname", Keys: bson.D{{Key: FieldNickname, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "groups_id", Keys: bson.D{{Key: FieldGroups, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "city_id", Keys: bson.D{{Key: FieldCity, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "province_id", Keys: bson.D{{Key: FieldProvince, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "country_id", Keys: bson.D{{Key: FieldCountry, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "language_id", Keys: bson.D{{Key: FieldLanguage, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "avatar_id", Keys: bson.D{{Key: FieldAvatar, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "email_verified_id", Keys: bson.D{{Key: FieldEmailVerified, Value: 1}, {Key: FieldID, Value: 1}}},
		IndexSpec{Collection: ColProfiles, Name: "phone_verified_id", Keys: bson.D{{Key: FieldPhoneVerified, Value: 1}, {Key: FieldID, Value: 1}}},
	)
}

// CreateProfile inserts p. A zero p.ID takes the next user id; zero times
// take the store clock. A taken unique value is a *ConflictError.
func (s *Store) CreateProfile(ctx context.Context, p *Profile) (err error) {
	now := s.Now()
	if p.Created.IsZero() {
		p.Created = now
	}
	if p.Updated.IsZero() {
		p.Updated = p.Created
	}
	if p.Groups == nil {
		p.Groups = []int64{}
	}
	ev, err := s.beginEvent(ctx, v1alpha1.EventUserCreated, p.ID, "", nil)
	if err != nil {
		return err
	}
	if ev != nil {
		p.CreatedEvent = ev.e.ID
	}
	defer func() {
		if err == nil {
			ev.seal(ctx, p.ID, nil)
		} else {
			ev.settle(ctx, err)
		}
	}()
	if p.ID == 0 {
		_, err = s.insertProfileWithNextID(ctx, func(id int64) any {
			p.ID = id
			return p
		})
	} else {
		err = s.insert(ctx, ColProfiles, p)
	}
	var ce *ConflictError
	if errors.As(err, &ce) && ce.Field == "" {
		// The server's message named no index we know (FerretDB names
		// none): find the field by looking the unique values up.
		ce.Field = s.takenField(ctx, p)
	}
	return err
}

func (s *Store) takenField(ctx context.Context, p *Profile) string {
	for _, kv := range []struct{ field, value string }{
		{FieldOpenID, p.OpenID}, {FieldUnionID, p.UnionID}, {FieldUsername, p.Username},
		{FieldEmail, p.Email}, {FieldPhone, p.Phone},
	} {
		if kv.value == "" {
			continue
		}
		taken, err := s.exists(ctx, ColProfiles, bson.D{{Key: kv.field, Value: kv.value}, {Key: FieldID, Value: bson.D{{Key: "$ne", Value: p.ID}}}})
		if err == nil && taken {
			return kv.field
		}
	}
	return ""
}

// GetProfile is the profile with this id, or ErrNotFound.
func (s *Store) GetProfile(ctx context.Context, id int64) (*Profile, error) {
	return s.findProfile(ctx, bson.D{{Key: FieldID, Value: id}})
}

// FindProfileBy is the profile whose field (username, email, phone, openid,
// unionid) equals value, or ErrNotFound.
func (s *Store) FindProfileBy(ctx context.Context, field, value string) (*Profile, error) {
	switch field {
	case FieldUsername, FieldEmail, FieldPhone, FieldOpenID, FieldUnionID:
	default:
		return nil, fmt.Errorf("store: FindProfileBy on non-unique field %q", field)
	}
	return s.findProfile(ctx, bson.D{{Key: field, Value: value}})
}

// findProfile finds a live profile: one being deleted or merged away
// (tombstoned) is not found.
func (s *Store) findProfile(ctx context.Context, filter bson.D) (*Profile, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var p Profile
	if err := decodeOne(s.col(ColProfiles).FindOne(ctx, filter), &p); err != nil {
		return nil, classify(err)
	}
	if p.Tombstone != nil {
		return nil, ErrNotFound
	}
	p.normalize()
	return &p, nil
}

// ProfileQuery is one page of a profile list.
type ProfileQuery struct {
	Filter Filter
	Sort   []SortKey // empty: by id ascending
	Limit  int64     // > 0
	Offset int64     // >= 0
	Count  bool      // also count every match
}

// SortKey orders by one field; the id is always appended as tie-break.
type SortKey struct {
	Field string
	Desc  bool
}

// ProfilePage is a page of profiles.
type ProfilePage struct {
	Profiles []*Profile
	More     bool   // another page follows
	Total    *int64 // set when ProfileQuery.Count
}

// ListProfiles runs q.
func (s *Store) ListProfiles(ctx context.Context, q ProfileQuery) (*ProfilePage, error) {
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Offset < 0 {
		return nil, fmt.Errorf("store: bad page limit=%d offset=%d", q.Limit, q.Offset)
	}
	filter := q.Filter.BSON()
	sort := sortBSON(q.Sort)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// One more than the page tells whether another page follows without
	// counting every match.
	opts := options.Find().SetSort(sort).SetSkip(q.Offset).SetLimit(q.Limit + 1)
	cur, err := s.col(ColProfiles).Find(ctx, filter, opts)
	if err != nil {
		return nil, classify(err)
	}
	var profiles []*Profile
	if err := decodeAll(ctx, cur, &profiles); err != nil {
		return nil, classify(err)
	}
	page := &ProfilePage{Profiles: profiles}
	if int64(len(profiles)) > q.Limit {
		page.Profiles, page.More = profiles[:q.Limit], true
	}
	live := page.Profiles[:0]
	for _, p := range page.Profiles {
		// A user being deleted or merged away is gone for readers (a
		// page may come out one short while that lasts).
		if p.Tombstone == nil {
			p.normalize()
			live = append(live, p)
		}
	}
	page.Profiles = live
	if q.Count {
		n, err := s.countMatches(ctx, filter, q.Offset, page)
		if err != nil {
			return nil, classify(err)
		}
		page.Total = &n
	}
	return page, nil
}

// countMatches is a list's total. A last page that holds something (or a
// first page, even empty) already tells it: offset plus what it holds. Only
// otherwise does the store count, which is a second scan of the matches
// (on FerretDB, of every row the filter cannot be pushed down for).
func (s *Store) countMatches(ctx context.Context, filter bson.D, offset int64, page *ProfilePage) (int64, error) {
	if !page.More && (len(page.Profiles) > 0 || offset == 0) {
		return offset + int64(len(page.Profiles)), nil
	}
	return s.col(ColProfiles).CountDocuments(ctx, filter)
}

func sortBSON(keys []SortKey) bson.D {
	d := bson.D{}
	last := 1
	for _, k := range keys {
		dir := 1
		if k.Desc {
			dir = -1
		}
		if k.Field == FieldID {
			return append(d, bson.E{Key: FieldID, Value: dir})
		}
		d = append(d, bson.E{Key: k.Field, Value: dir})
		last = dir
	}
	return append(d, bson.E{Key: FieldID, Value: last})
}

// UpdateCustomFields sets and unsets custom fields of one profile and bumps
// updated_at; the updated profile comes back.
func (s *Store) UpdateCustomFields(ctx context.Context, id int64, set map[string]any, unset []string) (*Profile, error) {
	setDoc := bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}
	for name, v := range set {
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

// UpdateProfile applies a raw field update ($set of document fields, by
// their bson names) to one profile, bumping updated_at. For the end-user
// dialect's profile edits.
func (s *Store) UpdateProfile(ctx context.Context, id int64, set map[string]any) (*Profile, error) {
	setDoc := bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}
	for k, v := range set {
		if k == FieldID {
			return nil, errors.New("store: the id cannot change")
		}
		setDoc = append(setDoc, bson.E{Key: k, Value: v})
	}
	return s.updateProfile(ctx, id, bson.D{{Key: "$set", Value: setDoc}})
}

// updateProfile applies update with a user.updated event naming the
// changed fields (events.go).
func (s *Store) updateProfile(ctx context.Context, id int64, update bson.D) (*Profile, error) {
	return s.updateProfileAs(ctx, id, update, v1alpha1.EventUserUpdated, nil)
}

// applyProfileUpdate applies update and returns the profile after it.
func (s *Store) applyProfileUpdate(ctx context.Context, id int64, update bson.D) (*Profile, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var p Profile
	err := decodeOne(s.col(ColProfiles).FindOneAndUpdate(ctx, bson.D{{Key: FieldID, Value: id}}, update,
		options.FindOneAndUpdate().SetReturnDocument(options.After)), &p)
	if err != nil {
		return nil, classify(err)
	}
	p.normalize()
	return &p, nil
}

// UserCleanup removes what a user owns outside the profile document.
type UserCleanup func(ctx context.Context, s *Store, userID int64) error

var userCleanups []UserCleanup

// RegisterUserCleanup adds a step to DeleteUser (call from init). Steps must
// be idempotent: a failed delete is retried from the start.
func RegisterUserCleanup(c UserCleanup) { userCleanups = append(userCleanups, c) }

// DeleteUser removes a user: a tombstone first (tombstones.go: the id is
// never given out again, every token of the user dies and nothing new can
// be made for it), then every registered cleanup (follows, wallet, ...),
// then the profile, which holds the group memberships. Without
// transactions a crash can stop it half-way; the profile goes last so the
// same call (or FinishDeletions) can be repeated to finish the job. A
// merged-away user keeps its merge tombstone.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	p, err := s.rawProfile(ctx, id)
	if errors.Is(err, ErrNotFound) {
		if buried, terr := s.Tombstoned(ctx, id); terr == nil && buried {
			// Cut off after the profile went: only the record is left.
			if ferr := s.finishTombstone(ctx, id); ferr != nil {
				return ferr
			}
		}
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if p.Tombstone == nil {
		// The first attempt announces the deletion; a resumed one (the
		// tombstone is there) already did, or left it to recovery.
		ev, err := s.beginEvent(ctx, v1alpha1.EventUserDeleted, id, "", map[string]any{"reason": TombstoneDeleted})
		if err != nil {
			return err
		}
		err = s.buryUser(ctx, id, TombstoneDeleted)
		ev.settle(ctx, err)
		if err != nil {
			return err
		}
	}
	for _, c := range userCleanups {
		if err := c(ctx, s, id); err != nil {
			return err
		}
	}
	if err := s.removeBuried(ctx, id); err != nil {
		return err
	}
	return s.finishTombstone(ctx, id)
}

// MissingUsers is the subset of ids with no profile.
func (s *Store) MissingUsers(ctx context.Context, ids []int64) ([]int64, error) {
	return s.missingIDs(ctx, ColProfiles, ids)
}

func (s *Store) missingIDs(ctx context.Context, collection string, ids []int64) ([]int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(collection).Find(ctx, bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: FieldID, Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var found []struct {
		ID int64 `bson:"_id"`
	}
	if err := decodeAll(ctx, cur, &found); err != nil {
		return nil, classify(err)
	}
	have := make(map[int64]bool, len(found))
	for _, f := range found {
		have[f.ID] = true
	}
	var missing []int64
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// normalize turns decoded BSON into plain Go values and UTC times.
func (p *Profile) normalize() {
	p.Created, p.Updated = p.Created.UTC(), p.Updated.UTC()
	if p.Ban != nil {
		p.Ban.At, p.Ban.Until = p.Ban.At.UTC(), p.Ban.Until.UTC()
	}
	if p.Groups == nil {
		p.Groups = []int64{}
	}
	for k, v := range p.Custom {
		p.Custom[k] = plainValue(v)
	}
}

// plainValue converts a decoded BSON value into JSON-friendly Go values.
func plainValue(v any) any {
	switch x := v.(type) {
	case bson.D:
		m := make(map[string]any, len(x))
		for _, e := range x {
			m[e.Key] = plainValue(e.Value)
		}
		return m
	case bson.M:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plainValue(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = plainValue(e)
		}
		return x
	case bson.A:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = plainValue(e)
		}
		return a
	case []any:
		for i, e := range x {
			x[i] = plainValue(e)
		}
		return x
	case bson.DateTime:
		return x.Time().UTC()
	case time.Time:
		return x.UTC()
	case int32:
		return int64(x)
	case bson.Null, bson.Undefined:
		return nil
	}
	return v
}
