package store

// Merging two users (POST /userve/v1/user-merge/): the user `from` is folded
// into `into` — identities, group memberships, follows and wallet balances
// move, then `from` is deleted — as one recoverable operation without
// transactions, on the rules of the wallet ledger (wallets.go).
//
// The merge document (`merges`, _id = the idempotency key, unique `from`)
// is inserted first and holds the plan: the identity values and balances
// read before anything moved. Every step after it only applies the plan and
// is idempotent ($unset/$set of recorded values, $addToSet, follow edges
// under unique _ids, wallet transfers exactly once per key), so a merge cut
// off anywhere is finished by replaying the same request: it finds its
// document and runs the steps again, and what was done is done again
// without effect. The unique `from` means a user is folded once: a second
// merge of the same user under another key is refused.
//
// Identities are openid, unionid, _username, _email and _phone, and the
// password. One that only `from` has moves; one both have is a conflict
// (ErrMergeConflict), refused before anything changes — except the
// username and password, where `into` keeps its own. Profile fields
// (nickname, avatar, gender, city, province, country, language) `into`
// leaves empty are filled from `from`. WeChat session keys
// do not move (they are sealed to their user): the merged user logs in
// with WeChat again before PUT /user/wechat/profile.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/api/v1alpha1"
)

// ColMerges holds one document per merge.
const ColMerges = "merges"

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColMerges, Name: "merge_from_unique", Keys: bson.D{{Key: "from", Value: 1}}, Unique: true, Field: "from"},
		IndexSpec{Collection: ColMerges, Name: "merge_into_state", Keys: bson.D{{Key: "into", Value: 1}, {Key: "state", Value: 1}}},
	)
}

// Merge states.
const (
	MergePending   = "pending"
	MergeCompleted = "completed"
)

// Merge errors.
var (
	ErrMergeSelf     = errors.New("a user cannot be merged into itself")
	ErrMergeMismatch = errors.New("the idempotency key was already used to merge other users")
	ErrMergeBusy     = errors.New("one of the users is part of another unfinished merge; finish that one first (replay it)")
)

// MergeConflictError lists identities both users hold.
type MergeConflictError struct{ Fields []string }

func (e *MergeConflictError) Error() string {
	return "both users have " + strings.Join(e.Fields, ", ") + ": unbind one side first"
}

// AlreadyMergedError means from was folded (or is being folded) into
// another user under another key.
type AlreadyMergedError struct{ Into int64 }

func (e *AlreadyMergedError) Error() string {
	return fmt.Sprintf("the user was already merged into user %d", e.Into)
}

// MergeRecord is one merge and its plan.
type MergeRecord struct {
	Key   string    `bson:"_id"`
	From  int64     `bson:"from"`
	Into  int64     `bson:"into"`
	State string    `bson:"state"`
	Plan  MergePlan `bson:"plan"`
	// Transfers are the wallet ledger entries that moved the balances.
	Transfers []int64   `bson:"transfers"`
	Created   time.Time `bson:"created_at"`
	Updated   time.Time `bson:"updated_at"`
}

// MergePlan is what a merge moves, read before anything moved.
type MergePlan struct {
	Identities   map[string]string `bson:"identities"` // profile field -> value moving to into
	Verified     map[string]bool   `bson:"verified"`   // email_verified / phone_verified of moving contacts
	PasswordHash string            `bson:"password_hash,omitempty"`
	Groups       []int64           `bson:"groups"`
	Balances     map[string]int64  `bson:"balances"` // account -> amount moving to into
	// Profile fills into's empty profile fields (nickname, avatar, gender,
	// city, province, country, language) with from's: a WeChat profile
	// survives a merge into a phone account that had none.
	Profile map[string]any `bson:"profile"`
}

// MergeKey is the default idempotency key of merging from into into.
func MergeKey(from, into int64) string {
	return strconv.FormatInt(from, 10) + ">" + strconv.FormatInt(into, 10)
}

// MergeUsers folds from into into under key (MergeKey when empty). It
// returns the merge, whether this call started it (false: a replay, which
// finishes an interrupted merge), and the merged user.
func (s *Store) MergeUsers(ctx context.Context, key string, from, into int64) (*MergeRecord, bool, *Profile, error) {
	if from == into {
		return nil, false, nil, ErrMergeSelf
	}
	if key == "" {
		key = MergeKey(from, into)
	}
	m, err := s.findMerge(ctx, bson.D{{Key: "_id", Value: key}})
	started := false
	switch {
	case errors.Is(err, ErrNotFound):
		m, err = s.planMerge(ctx, key, from, into)
		if err != nil {
			// A concurrent first request may have planned it and moved
			// things since our lookup (so the users now look merged or
			// conflicting): then this is a replay of that one.
			if again, ferr := s.findMerge(ctx, bson.D{{Key: "_id", Value: key}}); ferr == nil && again.From == from && again.Into == into {
				m, err = again, nil
				break
			}
			return nil, false, nil, err
		}
		started = true
	case err != nil:
		return nil, false, nil, err
	case m.From != from || m.Into != into:
		return nil, false, nil, ErrMergeMismatch
	}
	if m.State != MergeCompleted {
		if err := s.runMerge(ctx, m); err != nil {
			return m, started, nil, err
		}
	}
	p, err := s.GetProfile(ctx, into)
	return m, started, p, err
}

var mergeIdentityFields = []string{FieldOpenID, FieldUnionID, FieldUsername, FieldEmail, FieldPhone}

// planMerge checks the two users and inserts the merge with its plan.
func (s *Store) planMerge(ctx context.Context, key string, from, into int64) (*MergeRecord, error) {
	// A user in an unfinished merge cannot take part in another.
	for _, filter := range []bson.D{
		{{Key: "from", Value: into}},
		{{Key: "into", Value: from}, {Key: "state", Value: MergePending}},
	} {
		if other, err := s.findMerge(ctx, filter); err == nil {
			if other.From == into && other.State == MergeCompleted {
				return nil, ErrNotFound // into is gone: merged away
			}
			return nil, ErrMergeBusy
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if other, err := s.findMerge(ctx, bson.D{{Key: "from", Value: from}}); err == nil {
		return nil, &AlreadyMergedError{Into: other.Into}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	src, err := s.GetProfile(ctx, from)
	if err != nil {
		return nil, err
	}
	dst, err := s.GetProfile(ctx, into)
	if err != nil {
		return nil, err
	}
	plan := MergePlan{Identities: map[string]string{}, Verified: map[string]bool{}, Groups: src.Groups, Balances: map[string]int64{}}
	var conflicts []string
	for _, f := range mergeIdentityFields {
		sv, dv := identityValue(src, f), identityValue(dst, f)
		switch {
		case sv == "":
		case dv == "":
			plan.Identities[f] = sv
		case f != FieldUsername:
			conflicts = append(conflicts, f)
		}
	}
	if len(conflicts) > 0 {
		return nil, &MergeConflictError{Fields: conflicts}
	}
	if _, ok := plan.Identities[FieldEmail]; ok {
		plan.Verified[FieldEmailVerified] = src.EmailVerified
	}
	if _, ok := plan.Identities[FieldPhone]; ok {
		plan.Verified[FieldPhoneVerified] = src.PhoneVerified
	}
	if dst.PasswordHash == "" {
		plan.PasswordHash = src.PasswordHash
	}
	plan.Profile = map[string]any{}
	for _, f := range []struct {
		field    string
		src, dst string
	}{{FieldNickname, src.Nickname, dst.Nickname}, {FieldAvatar, src.Avatar, dst.Avatar}, {FieldCity, src.City, dst.City},
		{FieldProvince, src.Province, dst.Province}, {FieldCountry, src.Country, dst.Country}, {FieldLanguage, src.Language, dst.Language}} {
		if f.dst == "" && f.src != "" {
			plan.Profile[f.field] = f.src
		}
	}
	if dst.Gender == 0 && src.Gender != 0 {
		plan.Profile[FieldGender] = src.Gender
	}
	w, err := s.GetWallet(ctx, from)
	if err != nil {
		return nil, err
	}
	for _, a := range []Account{AccountWallet, AccountNewWallet, AccountCurrency} {
		if b := w.Balance(a); b > 0 {
			plan.Balances[string(a)] = b
		}
	}
	now := s.Now()
	m := &MergeRecord{Key: key, From: from, Into: into, State: MergePending, Plan: plan, Transfers: []int64{}, Created: now, Updated: now}
	err = s.insert(ctx, ColMerges, m)
	var ce *ConflictError
	if errors.As(err, &ce) {
		// A concurrent request: the same key (a replay) or the same from.
		existing, ferr := s.findMerge(ctx, bson.D{{Key: "_id", Value: key}})
		if ferr == nil {
			if existing.From != from || existing.Into != into {
				return nil, ErrMergeMismatch
			}
			return existing, nil
		}
		if other, ferr := s.findMerge(ctx, bson.D{{Key: "from", Value: from}}); ferr == nil {
			return nil, &AlreadyMergedError{Into: other.Into}
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func identityValue(p *Profile, field string) string {
	switch field {
	case FieldOpenID:
		return p.OpenID
	case FieldUnionID:
		return p.UnionID
	case FieldUsername:
		return p.Username
	case FieldEmail:
		return p.Email
	case FieldPhone:
		return p.Phone
	}
	return ""
}

// runMerge applies m's plan; every step is idempotent. A step that finds
// from gone met a concurrent replay that has finished every step (from's
// profile goes last).
func (s *Store) runMerge(ctx context.Context, m *MergeRecord) error {
	err := s.runMergeSteps(ctx, m)
	if errors.Is(err, ErrNotFound) {
		if _, perr := s.rawProfile(ctx, m.From); errors.Is(perr, ErrNotFound) {
			return s.finishMerge(ctx, m)
		}
	}
	return err
}

func (s *Store) runMergeSteps(ctx context.Context, m *MergeRecord) error {
	p := m.Plan
	// from's profile goes last (DeleteUser removes everything else first),
	// so without it every step has run: only the record is left to finish.
	if _, err := s.rawProfile(ctx, m.From); errors.Is(err, ErrNotFound) {
		return s.finishMerge(ctx, m)
	} else if err != nil {
		return err
	}
	// from is tombstoned before anything moves (tombstones.go): its id is
	// never given out again, and the mark below makes nobody send it money
	// or follow it meanwhile.
	if err := s.recordTombstone(ctx, m.From, TombstoneMerged); err != nil {
		return err
	}
	// Identities: free them on from (unique indexes), then set them on
	// into. from is marked and its tokens end in the same write (a
	// token_epoch no token carries), so it cannot spend what is about to
	// move. One write: on FerretDB two updates of one document racing
	// (concurrent replays) could each write back what the other removed.
	unset := bson.D{{Key: "password_hash", Value: ""}}
	for f := range p.Identities {
		unset = append(unset, bson.E{Key: f, Value: ""})
	}
	// This write is from's end: its user.deleted event goes with it (a
	// replay announces it again; DeleteUser below finds it tombstoned and
	// does not).
	_, err := s.updateProfileAs(ctx, m.From, bson.D{
		{Key: "$unset", Value: unset},
		{Key: "$set", Value: bson.D{{Key: FieldUpdatedAt, Value: s.Now()},
			{Key: "tombstone", Value: ProfileTombstone{Reason: TombstoneMerged, At: m.Created}}}},
		{Key: "$inc", Value: bson.D{{Key: "token_epoch", Value: tombstoneEpochStep}}},
	}, v1alpha1.EventUserDeleted, map[string]any{"reason": TombstoneMerged, "merged_into": m.Into})
	if err != nil {
		return err
	}
	if err := s.fault("from-unset"); err != nil {
		return err
	}
	set := bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}
	for _, f := range mergeIdentityFields {
		if v, ok := p.Identities[f]; ok {
			set = append(set, bson.E{Key: f, Value: v})
		}
	}
	for f, v := range p.Verified {
		set = append(set, bson.E{Key: f, Value: v})
	}
	if p.PasswordHash != "" {
		set = append(set, bson.E{Key: "password_hash", Value: p.PasswordHash})
	}
	for _, f := range []string{FieldNickname, FieldAvatar, FieldGender, FieldCity, FieldProvince, FieldCountry, FieldLanguage} {
		if v, ok := p.Profile[f]; ok {
			set = append(set, bson.E{Key: f, Value: v})
		}
	}
	if _, err := s.updateProfile(ctx, m.Into, bson.D{{Key: "$set", Value: set}}); err != nil {
		return err
	}
	if err := s.fault("identities"); err != nil {
		return err
	}
	if len(p.Groups) > 0 {
		if err := s.AddMembers(ctx, []int64{m.Into}, p.Groups); err != nil {
			return err
		}
	}
	if err := s.fault("groups"); err != nil {
		return err
	}
	if err := s.moveFollows(ctx, m.From, m.Into); err != nil {
		return err
	}
	if err := s.fault("follows"); err != nil {
		return err
	}
	accounts := make([]string, 0, len(p.Balances))
	for a := range p.Balances {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	var transfers []int64
	for _, a := range accounts {
		e, err := s.mergeTransfer(ctx, m, Account(a), p.Balances[a])
		if err != nil {
			return fmt.Errorf("moving %s: %w", a, err)
		}
		transfers = append(transfers, e.ID)
	}
	if err := s.setMergeTransfers(ctx, m, transfers); err != nil {
		return err
	}
	if err := s.fault("wallet"); err != nil {
		return err
	}
	if err := s.DeleteUser(ctx, m.From); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := s.fault("deleted"); err != nil {
		return err
	}
	return s.finishMerge(ctx, m)
}

// mergeTransfer moves one planned balance under an internal ledger key
// ("internal:merge:<key>:<account>"), which no client can take first.
// Merges of earlier versions used the sender's client namespace
// ("transfer:<from>:merge:<key>:<account>"): an entry there that is this
// very transfer (same parties, account and amount) is taken as done, and
// anything else there, such as a key a user sent to wedge the merge, is
// ignored.
func (s *Store) mergeTransfer(ctx context.Context, m *MergeRecord, a Account, amount int64) (*LedgerEntry, error) {
	req := TransferRequest{From: m.From, To: m.Into, Account: a, Amount: amount,
		Title: "merge of user " + strconv.FormatInt(m.From, 10), internalKey: "merge:" + m.Key + ":" + string(a)}
	legacy, err := s.entryByKey(ctx, ledgerKeyTransfer+strconv.FormatInt(m.From, 10)+":merge:"+m.Key+":"+string(a))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if legacy != nil && legacy.Fingerprint == transferFingerprint(req) {
		return s.settle(ctx, legacy)
	}
	e, _, err := s.Transfer(ctx, req)
	return e, err
}

// moveFollows gives into every follow edge of from (in both directions),
// except edges between the two. from's own edges go with from.
func (s *Store) moveFollows(ctx context.Context, from, into int64) error {
	qctx, cancel := s.opContext(ctx)
	cur, err := s.col(ColFollows).Find(qctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "follower", Value: from}}, bson.D{{Key: "followee", Value: from}},
	}}})
	if err != nil {
		cancel()
		return classify(err)
	}
	var edges []followDoc
	err = decodeAll(qctx, cur, &edges)
	cancel()
	if err != nil {
		return classify(err)
	}
	for _, e := range edges {
		follower, followee := e.Follower, e.Followee
		if follower == from {
			follower = into
		}
		if followee == from {
			followee = into
		}
		if follower == followee {
			continue
		}
		err := retryTransient(ctx, func() error { _, err := s.Follow(ctx, follower, followee); return err })
		if err != nil && !errors.Is(err, ErrNotFound) { // ErrNotFound: the other side is being deleted
			return err
		}
	}
	return nil
}

func (s *Store) setMergeTransfers(ctx context.Context, m *MergeRecord, ids []int64) error {
	if ids == nil {
		ids = []int64{}
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColMerges).UpdateOne(ctx, bson.D{{Key: "_id", Value: m.Key}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "transfers", Value: ids}, {Key: "updated_at", Value: s.Now()}}}})
	if err == nil {
		m.Transfers = ids
	}
	return classify(err)
}

// finishMerge marks m completed and drops the moved password hash from the
// plan (the profile holds it now).
func (s *Store) finishMerge(ctx context.Context, m *MergeRecord) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	_, err := s.col(ColMerges).UpdateOne(ctx, bson.D{{Key: "_id", Value: m.Key}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "state", Value: MergeCompleted}, {Key: "updated_at", Value: now}}},
		{Key: "$unset", Value: bson.D{{Key: "plan.password_hash", Value: ""}}},
	})
	if err != nil {
		return classify(err)
	}
	m.State, m.Updated, m.Plan.PasswordHash = MergeCompleted, now, ""
	return nil
}

func (s *Store) findMerge(ctx context.Context, filter bson.D) (*MergeRecord, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var m MergeRecord
	err := decodeOne(s.col(ColMerges).FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "created_at", Value: -1}})), &m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, classify(err)
	}
	m.Created, m.Updated = m.Created.UTC(), m.Updated.UTC()
	return &m, nil
}
