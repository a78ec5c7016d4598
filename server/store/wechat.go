package store

// WeChat identities, session keys and the shared access-token cache.
//
// A WeChat user is a profile with openid (and unionid when WeChat gives
// one). Their unique sparse indexes decide every race: replicas creating
// the same first login all insert, one insert wins, the others find the
// winner. Linking is a $set the same indexes guard.
//
// Session keys live apart from profiles (wechat_sessions, _id = user id),
// sealed by the caller (AES-GCM, see server/wechat.Sealer), so no profile
// read can ever carry one.
//
// The access token is cached in wechat_tokens as generations: _id
// "token:<appid>:<gen>". Fetching generation g is claimed by inserting the
// lease "lease:<appid>:<g>:<k>": only one replica's insert succeeds, it
// fetches, the others keep using the previous token while it is still valid,
// or wait for generation g to appear. A lease that ran out (its holder
// crashed or WeChat failed it) is followed by lease k+1, again one winner.
// No update decides anything, so FerretDB's unisolated updates cannot let
// two replicas fetch at once.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of this file.
const (
	ColWeChatSessions = "wechat_sessions"
	ColWeChatTokens   = "wechat_tokens"
)

// Access-token cache timing.
var (
	// WeChatTokenMargin: a token this close to its expiry is refreshed (by
	// one replica; the others keep using it meanwhile).
	WeChatTokenMargin = 5 * time.Minute
	// WeChatTokenLease is how long a replica may take to fetch a token
	// before another may try; above the WeChat client's timeout.
	WeChatTokenLease = 10 * time.Second
	// WeChatTokenWait bounds how long a request waits for another replica's
	// fetch when it has no usable token.
	WeChatTokenWait = 12 * time.Second
)

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColWeChatTokens, Name: "app_kind_gen", Keys: bson.D{{Key: "appid", Value: 1}, {Key: "kind", Value: 1}, {Key: "gen", Value: -1}, {Key: "k", Value: -1}}},
	)
	RegisterUserCleanup(deleteWeChatSession)
}

// FindWeChatUser is the user with unionid (when given), else with openid.
// An identity an unfinished merge is moving (freed on one user, not yet
// set on the other) is found by finishing that merge first, so a login in
// that moment neither creates a second user nor blocks the merge.
func (s *Store) FindWeChatUser(ctx context.Context, openid, unionid string) (*Profile, error) {
	p, err := s.findWeChatUser(ctx, openid, unionid)
	if !errors.Is(err, ErrNotFound) {
		return p, err
	}
	for _, id := range []struct{ field, value string }{{FieldUnionID, unionid}, {FieldOpenID, openid}} {
		if id.value == "" {
			continue
		}
		m, err := s.findMerge(ctx, bson.D{{Key: "state", Value: MergePending}, {Key: "plan.identities." + id.field, Value: id.value}})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if _, _, _, err := s.MergeUsers(ctx, m.Key, m.From, m.Into); err != nil {
			return nil, err
		}
		return s.findWeChatUser(ctx, openid, unionid)
	}
	return nil, ErrNotFound
}

func (s *Store) findWeChatUser(ctx context.Context, openid, unionid string) (*Profile, error) {
	if unionid != "" {
		p, err := s.FindProfileBy(ctx, FieldUnionID, unionid)
		if !errors.Is(err, ErrNotFound) {
			return p, err
		}
	}
	return s.FindProfileBy(ctx, FieldOpenID, openid)
}

// LoginWeChat finds the WeChat user, or creates one when create is set
// (created reports it). Concurrent first logins of one WeChat user create
// exactly one profile: the unique openid/unionid indexes let one insert
// through and the others find it. Without create an unknown user is
// ErrNotFound. A found user missing this openid or unionid gets it.
func (s *Store) LoginWeChat(ctx context.Context, openid, unionid string, create bool) (p *Profile, created bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		p, err = s.FindWeChatUser(ctx, openid, unionid)
		if err == nil {
			p, err = s.completeWeChatIdentity(ctx, p, openid, unionid)
			return p, false, err
		}
		if !errors.Is(err, ErrNotFound) || !create {
			return nil, false, err
		}
		p = &Profile{OpenID: openid, UnionID: unionid}
		err = s.CreateProfile(ctx, p)
		if err == nil {
			return p, true, nil
		}
		var ce *ConflictError
		if !errors.As(err, &ce) {
			return nil, false, err
		}
		// Another replica created it first: find that one.
	}
	return nil, false, err
}

// completeWeChatIdentity records an openid or unionid the user lacks.
func (s *Store) completeWeChatIdentity(ctx context.Context, p *Profile, openid, unionid string) (*Profile, error) {
	set := bson.D{}
	if p.OpenID == "" && openid != "" {
		set = append(set, bson.E{Key: FieldOpenID, Value: openid})
	}
	if p.UnionID == "" && unionid != "" {
		set = append(set, bson.E{Key: FieldUnionID, Value: unionid})
	}
	if len(set) == 0 {
		return p, nil
	}
	set = append(set, bson.E{Key: FieldUpdatedAt, Value: s.Now()})
	q, err := s.updateProfile(ctx, p.ID, bson.D{{Key: "$set", Value: set}})
	if errors.Is(err, ErrConflict) {
		return p, nil // held elsewhere: keep what the user has
	}
	return q, err
}

// LinkWeChat sets openid and unionid (when not empty) on user id. A value
// another user holds is a *ConflictError naming the field, and nothing
// changes.
func (s *Store) LinkWeChat(ctx context.Context, id int64, openid, unionid string) (*Profile, error) {
	set := bson.D{{Key: FieldOpenID, Value: openid}, {Key: FieldUpdatedAt, Value: s.Now()}}
	if unionid != "" {
		set = append(set, bson.E{Key: FieldUnionID, Value: unionid})
	}
	p, err := s.updateProfile(ctx, id, bson.D{{Key: "$set", Value: set}})
	var ce *ConflictError
	if errors.As(err, &ce) && ce.Field == "" {
		ce.Field = s.takenField(ctx, &Profile{ID: id, OpenID: openid, UnionID: unionid})
	}
	return p, err
}

// UnlinkWeChat removes openid, unionid and the session key of user id.
func (s *Store) UnlinkWeChat(ctx context.Context, id int64) (*Profile, error) {
	p, err := s.updateProfile(ctx, id, bson.D{
		{Key: "$unset", Value: bson.D{{Key: FieldOpenID, Value: ""}, {Key: FieldUnionID, Value: ""}}},
		{Key: "$set", Value: bson.D{{Key: FieldUpdatedAt, Value: s.Now()}}},
	})
	if err != nil {
		return nil, err
	}
	return p, deleteWeChatSession(ctx, s, id)
}

type weChatSession struct {
	UserID  int64     `bson:"_id"`
	AppID   string    `bson:"appid"`
	Sealed  []byte    `bson:"sealed"`
	Updated time.Time `bson:"updated_at"`
}

// SaveWeChatSession keeps user's sealed session key for appid (the latest
// login's; an older one is replaced).
func (s *Store) SaveWeChatSession(ctx context.Context, user int64, appid string, sealed []byte) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	doc := weChatSession{UserID: user, AppID: appid, Sealed: sealed, Updated: s.Now()}
	return classify(retryTransient(ctx, func() error {
		_, err := s.col(ColWeChatSessions).ReplaceOne(ctx, bson.D{{Key: "_id", Value: user}}, doc, options.Replace().SetUpsert(true))
		if mongo.IsDuplicateKeyError(err) {
			// Two upserts raced and both tried to insert: the other's
			// insert is there now, replace it.
			_, err = s.col(ColWeChatSessions).ReplaceOne(ctx, bson.D{{Key: "_id", Value: user}}, doc)
		}
		return err
	}))
}

// WeChatSession is user's sealed session key and its appid, or ErrNotFound.
func (s *Store) WeChatSession(ctx context.Context, user int64) (appid string, sealed []byte, err error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var d weChatSession
	if err := decodeOne(s.col(ColWeChatSessions).FindOne(ctx, bson.D{{Key: "_id", Value: user}}), &d); err != nil {
		return "", nil, classify(err)
	}
	return d.AppID, d.Sealed, nil
}

func deleteWeChatSession(ctx context.Context, s *Store, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColWeChatSessions).DeleteOne(ctx, bson.D{{Key: "_id", Value: user}})
	return classify(err)
}

// ---- access tokens -----------------------------------------------------------

// AccessToken is one cached generation of an app's access token.
type AccessToken struct {
	ID        string    `bson:"_id"`
	Kind      string    `bson:"kind"` // "token"
	AppID     string    `bson:"appid"`
	Gen       int64     `bson:"gen"`
	Value     string    `bson:"token"`
	ExpiresAt time.Time `bson:"expires_at"`
	FetchedAt time.Time `bson:"fetched_at"`
}

type tokenLease struct {
	ID    string    `bson:"_id"`
	Kind  string    `bson:"kind"` // "lease"
	AppID string    `bson:"appid"`
	Gen   int64     `bson:"gen"`
	K     int64     `bson:"k"`
	Until time.Time `bson:"until"`
}

// FetchToken gets a new token from WeChat; force asks WeChat to replace a
// token it refused.
type FetchToken func(ctx context.Context, force bool) (token string, ttl time.Duration, err error)

// ErrTokenWait means no token could be had in time: another replica holds
// the fetch and has not finished. Transient.
var ErrTokenWait = fmt.Errorf("%w: waiting for another replica to fetch the WeChat access token", ErrUnavailable)

// WeChatAccessToken is appid's access token: the cached one while it is
// fresh, else fetched by exactly one replica (see the file comment).
func (s *Store) WeChatAccessToken(ctx context.Context, appid string, fetch FetchToken) (*AccessToken, error) {
	return s.weChatToken(ctx, appid, 0, fetch)
}

// RefreshWeChatAccessToken replaces stale, a token WeChat refused: the
// first caller fetches with force, later callers get its result.
func (s *Store) RefreshWeChatAccessToken(ctx context.Context, stale *AccessToken, fetch FetchToken) (*AccessToken, error) {
	return s.weChatToken(ctx, stale.AppID, stale.Gen, fetch)
}

func (s *Store) weChatToken(ctx context.Context, appid string, staleGen int64, fetch FetchToken) (*AccessToken, error) {
	deadline := time.Now().Add(WeChatTokenWait)
	wait := 20 * time.Millisecond
	for {
		cur, err := s.latestToken(ctx, appid)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		now := s.Now()
		live := cur != nil && cur.Gen > staleGen && now.Before(cur.ExpiresAt)
		// Fresh: far from expiry, or fetched just now (WeChat may hand the
		// same token back with little time left; asking again at once
		// would not help).
		if live && (now.Before(cur.ExpiresAt.Add(-WeChatTokenMargin)) || now.Before(cur.FetchedAt.Add(time.Minute))) {
			return cur, nil
		}
		gen := int64(1)
		if cur != nil {
			gen = cur.Gen + 1
		}
		lease, err := s.takeTokenLease(ctx, appid, gen)
		if err != nil {
			return nil, err
		}
		if lease != nil {
			return s.fetchToken(ctx, appid, gen, lease, staleGen != 0 && cur != nil && cur.Gen == staleGen, fetch)
		}
		if live {
			return cur, nil // another replica is refreshing it
		}
		if time.Now().After(deadline) {
			return nil, ErrTokenWait
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// fetchToken fetches generation gen under lease and stores it.
func (s *Store) fetchToken(ctx context.Context, appid string, gen int64, lease *tokenLease, force bool, fetch FetchToken) (*AccessToken, error) {
	value, ttl, err := fetch(ctx, force)
	if err != nil {
		// Let the next caller try at once rather than after the lease.
		s.endTokenLease(context.WithoutCancel(ctx), lease)
		return nil, err
	}
	now := s.Now()
	t := &AccessToken{ID: "token:" + appid + ":" + strconv.FormatInt(gen, 10), Kind: "token", AppID: appid, Gen: gen,
		Value: value, ExpiresAt: now.Add(ttl), FetchedAt: now}
	err = s.insert(ctx, ColWeChatTokens, t)
	if errors.Is(err, ErrConflict) {
		// The lease ran out while fetching and another replica stored
		// this generation: use theirs.
		return s.findToken(ctx, bson.D{{Key: "_id", Value: t.ID}})
	}
	if err != nil {
		return nil, err
	}
	s.sweepTokens(ctx, appid, gen)
	return t, nil
}

func (s *Store) latestToken(ctx context.Context, appid string) (*AccessToken, error) {
	return s.findToken(ctx, bson.D{{Key: "appid", Value: appid}, {Key: "kind", Value: "token"}}, bson.E{Key: "gen", Value: -1})
}

func (s *Store) findToken(ctx context.Context, filter bson.D, sort ...bson.E) (*AccessToken, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	o := options.FindOne()
	if len(sort) > 0 {
		o.SetSort(bson.D(sort))
	}
	var t AccessToken
	if err := decodeOne(s.col(ColWeChatTokens).FindOne(ctx, filter, o), &t); err != nil {
		return nil, classify(err)
	}
	t.ExpiresAt, t.FetchedAt = t.ExpiresAt.UTC(), t.FetchedAt.UTC()
	return &t, nil
}

// takeTokenLease claims the fetch of generation gen; nil when another
// replica holds a live lease on it or won the race to the next one.
func (s *Store) takeTokenLease(ctx context.Context, appid string, gen int64) (*tokenLease, error) {
	qctx, cancel := s.opContext(ctx)
	var last tokenLease
	err := decodeOne(s.col(ColWeChatTokens).FindOne(qctx,
		bson.D{{Key: "appid", Value: appid}, {Key: "kind", Value: "lease"}, {Key: "gen", Value: gen}},
		options.FindOne().SetSort(bson.D{{Key: "k", Value: -1}})), &last)
	cancel()
	k := int64(1)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
	case err != nil:
		return nil, classify(err)
	case last.Until.After(s.Now()):
		return nil, nil // held
	default:
		k = last.K + 1
	}
	l := &tokenLease{ID: fmt.Sprintf("lease:%s:%d:%d", appid, gen, k), Kind: "lease", AppID: appid, Gen: gen, K: k,
		Until: s.Now().Add(WeChatTokenLease)}
	err = s.insert(ctx, ColWeChatTokens, l)
	if errors.Is(err, ErrConflict) {
		return nil, nil // another replica took it
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// endTokenLease gives a failed fetch's lease up. Only its holder writes it.
func (s *Store) endTokenLease(ctx context.Context, l *tokenLease) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	past := s.Now().Add(-time.Second)
	if _, err := s.col(ColWeChatTokens).UpdateOne(ctx, bson.D{{Key: "_id", Value: l.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: past}}}}); err != nil {
		s.log.Warn("giving up a WeChat token lease failed; it runs out by itself", "error", err)
	}
}

// sweepTokens drops generations and leases older than gen-1.
func (s *Store) sweepTokens(ctx context.Context, appid string, gen int64) {
	if gen < 3 {
		return
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColWeChatTokens).DeleteMany(ctx, bson.D{{Key: "appid", Value: appid}, {Key: "gen", Value: bson.D{{Key: "$lt", Value: gen - 1}}}})
	if err != nil {
		s.log.Warn("sweeping old WeChat tokens failed", "error", err)
	}
}
