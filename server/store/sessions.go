package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/api/v1alpha1"
)

// ColSessions records each login (a token family, auth.Claims.Family: the
// login's token and every token refreshed from it) for the user's and the
// admin's session lists (docs/plus.md, "Sessions"). The record is for
// showing only: whether a token is live is decided by the revocations
// (revocations.go), so ending a session revokes its family there first.
const ColSessions = "sessions"

// SessionTouchEvery is how stale a session's last use may get: a use
// writes it at most this often.
const SessionTouchEvery = time.Minute

// MaxSessionsListed bounds one user's session list (newest first).
const MaxSessionsListed = 100

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColSessions, Name: "user_started", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "started_at", Value: -1}}},
		IndexSpec{Collection: ColSessions, Name: "expires_at", Keys: bson.D{{Key: "expires_at", Value: 1}}},
	)
	RegisterUserCleanup(deleteSessions)
}

// Session is one login.
type Session struct {
	ID        string `bson:"_id"` // the token family
	UserID    int64  `bson:"user_id"`
	API       string `bson:"api"`    // the dialect logged in through: "v2" or "hserve"
	Method    string `bson:"method"` // password, code, wechat, register, anonymous
	Address   string `bson:"address"`
	UserAgent string `bson:"user_agent"`
	// Epoch is the user's token epoch at login: a later password change
	// ended the session.
	Epoch      int64     `bson:"epoch"`
	StartedAt  time.Time `bson:"started_at"`
	LastUsedAt time.Time `bson:"last_used_at"`
	// ExpiresAt is the login's refresh deadline: no token of it is
	// usable after.
	ExpiresAt time.Time `bson:"expires_at"`
}

// CreateSession records a login.
func (s *Store) CreateSession(ctx context.Context, ss *Session) error {
	ev, err := s.beginEvent(ctx, v1alpha1.EventUserLogin, ss.UserID, ss.ID, loginEventData(ss))
	if err != nil {
		return err
	}
	err = s.insert(ctx, ColSessions, ss)
	ev.settle(ctx, err)
	if err == nil {
		s.maybeSweep(ctx, ColSessions, "expires_at")
	}
	return err
}

// TouchSession records a use of session id at now, unless one was
// recorded less than SessionTouchEvery before (on any replica): one
// conditional write, which matches nothing most of the time.
func (s *Store) TouchSession(ctx context.Context, id string, now time.Time) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColSessions).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "last_used_at", Value: bson.D{{Key: "$lte", Value: now.Add(-SessionTouchEvery)}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: now}}}})
	return classify(err)
}

// ListSessions are the live sessions of user id as of token epoch `epoch`,
// newest first: not past their refresh deadline, not ended (revoked), not
// older than the last password change.
func (s *Store) ListSessions(ctx context.Context, userID, epoch int64) ([]Session, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColSessions).Find(ctx, bson.D{
		{Key: "user_id", Value: userID},
		{Key: "epoch", Value: epoch},
		{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: s.Now()}}},
	}, options.Find().SetSort(bson.D{{Key: "started_at", Value: -1}}).SetLimit(MaxSessionsListed))
	if err != nil {
		return nil, classify(err)
	}
	var all []Session
	if err := decodeAll(ctx, cur, &all); err != nil {
		return nil, classify(err)
	}
	if len(all) == 0 {
		return []Session{}, nil
	}
	// A session whose family was revoked but whose record outlived that
	// (a delete cut short, a refresh token used twice) is over.
	ids := make([]string, len(all))
	for i, ss := range all {
		ids[i] = familyPrefix + ss.ID
	}
	cur, err = s.col(ColRevocations).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var revoked []struct {
		ID string `bson:"_id"`
	}
	if err := decodeAll(ctx, cur, &revoked); err != nil {
		return nil, classify(err)
	}
	ended := map[string]bool{}
	for _, r := range revoked {
		ended[r.ID[len(familyPrefix):]] = true
	}
	live := make([]Session, 0, len(all))
	for _, ss := range all {
		if !ended[ss.ID] {
			ss.StartedAt, ss.LastUsedAt, ss.ExpiresAt = ss.StartedAt.UTC(), ss.LastUsedAt.UTC(), ss.ExpiresAt.UTC()
			live = append(live, ss)
		}
	}
	return live, nil
}

// DeleteSession forgets session id (after its family was revoked).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColSessions).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return classify(err)
}

func deleteSessions(ctx context.Context, s *Store, userID int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColSessions).DeleteMany(ctx, bson.D{{Key: "user_id", Value: userID}})
	return classify(err)
}

// GetSession is user userID's session id, or ErrNotFound (also when it is
// another user's).
func (s *Store) GetSession(ctx context.Context, userID int64, id string) (*Session, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var ss Session
	if err := decodeOne(s.col(ColSessions).FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "user_id", Value: userID}}), &ss); err != nil {
		return nil, classify(err)
	}
	return &ss, nil
}
