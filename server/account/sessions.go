package account

// Sessions: every login (password, code, WeChat, registration, the SDK's
// logins) starts one, and StartLogin is the one place that issues a login's
// first token: it refuses banned users and records the session (store
// sessions.go). A session is its token family; ending it revokes the
// family (on every replica, since CheckToken reads the revocations) and
// forgets the record.

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/store"
)

// Login methods, as sessions record them.
const (
	MethodPassword  = "password"
	MethodCode      = "code"
	MethodWeChat    = "wechat"
	MethodRegister  = "register"
	MethodAnonymous = "anonymous"
)

// APIs a session may be started through.
const (
	APIPlus   = "v2"
	APIHServe = "hserve"
)

// maxUserAgent bounds the User-Agent kept per session, in bytes.
const maxUserAgent = 512

// LoginFrom describes a login: how, through which API, from where.
type LoginFrom struct {
	API, Method        string
	Address, UserAgent string
}

// LoginOf is the LoginFrom of request r (its client's address as the
// trusted proxies tell it, and its User-Agent).
func LoginOf(r *http.Request, trusted []netip.Prefix, api, method string) LoginFrom {
	// Header bytes need not be UTF-8, which the store's strings must be.
	ua := strings.ToValidUTF8(r.UserAgent(), "\uFFFD")
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1] // a rune cut in two
		}
	}
	return LoginFrom{API: api, Method: method, UserAgent: ua,
		Address: clientAddress(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted)}
}

// ErrNoSession: no such session of this user (or it ended already).
var ErrNoSession = errors.New("no such session")

// StartLogin issues the first token of a login of p, unless p is banned
// (*Banned), and records the session.
func (s *Service) StartLogin(ctx context.Context, tokens *auth.Issuer, p *store.Profile, from LoginFrom) (string, auth.Claims, error) {
	if b := p.ActiveBan(s.store.Now()); b != nil {
		s.recordLogin(ctx, p.ID, from, ResultBanned)
		return "", auth.Claims{}, bannedError(b)
	}
	token, claims, err := tokens.Issue(p.ID, p.TokenEpoch)
	if err != nil {
		return "", auth.Claims{}, err
	}
	err = s.store.CreateSession(ctx, &store.Session{
		ID: claims.Family, UserID: p.ID, API: from.API, Method: from.Method,
		Address: from.Address, UserAgent: from.UserAgent, Epoch: p.TokenEpoch,
		StartedAt: claims.AuthTime, LastUsedAt: claims.AuthTime,
		ExpiresAt: claims.RefreshDeadline(tokens.RefreshTTL),
	})
	if err != nil {
		return "", auth.Claims{}, err
	}
	s.recordLogin(ctx, p.ID, from, ResultOK)
	return token, claims, nil
}

// Sessions are p's live sessions, newest first.
func (s *Service) Sessions(ctx context.Context, p *store.Profile) ([]store.Session, error) {
	return s.store.ListSessions(ctx, p.ID, p.TokenEpoch)
}

// EndSession ends session id of user userID: every token of it is refused
// from now on, on every replica. ErrNoSession: none such.
func (s *Service) EndSession(ctx context.Context, userID int64, id string) error {
	ctx = context.WithoutCancel(ctx)
	ss, err := s.store.GetSession(ctx, userID, id)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoSession
	}
	if err != nil {
		return err
	}
	if err := s.store.RevokeFamily(ctx, ss.ID, ss.ExpiresAt, "ended"); err != nil {
		return err
	}
	return s.store.DeleteSession(ctx, ss.ID)
}

// touches remembers, per process, when each session's last use was
// written, so that most requests do not even try (the store's conditional
// write keeps it at most once a minute across replicas).
type touches struct {
	m     sync.Map // family -> time.Time of the last write tried
	count atomic.Int64
}

// due reports whether family's last use should be written at now, and
// remembers it; now and then it forgets families not seen for a while.
func (t *touches) due(family string, now time.Time) bool {
	if last, ok := t.m.Load(family); ok && now.Sub(last.(time.Time)) < store.SessionTouchEvery {
		return false
	}
	t.m.Store(family, now)
	if t.count.Add(1)%1024 == 0 {
		t.m.Range(func(k, v any) bool {
			if now.Sub(v.(time.Time)) >= store.SessionTouchEvery {
				t.m.Delete(k)
			}
			return true
		})
	}
	return true
}

// touch records a use of the session of claims (best effort: a failure
// only leaves last_used_at older).
func (s *Service) touch(ctx context.Context, claims auth.Claims) {
	now := s.store.Now()
	if !s.touched.due(claims.Family, now) {
		return
	}
	if err := s.store.TouchSession(ctx, claims.Family, now); err != nil {
		s.log.Debug("recording a session's use failed", "family", claims.Family, "error", err)
	}
}

// Results of login attempts, as the login history keeps them.
const (
	ResultOK            = "ok"
	ResultWrongPassword = "wrong_password"
	ResultWrongCode     = "wrong_code"
	ResultThrottled     = "throttled"
	ResultBanned        = "banned"
)

// recordLogin adds an attempt to user id's login history (best effort: a
// failure is logged, the login goes on).
func (s *Service) recordLogin(ctx context.Context, id int64, from LoginFrom, result string) {
	now := s.store.Now()
	err := s.store.RecordLogin(context.WithoutCancel(ctx), store.LoginRecord{UserID: id, At: now, API: from.API,
		Method: from.Method, Address: from.Address, Result: result, ExpiresAt: now.Add(s.loginHistory)})
	if err != nil {
		s.log.Warn("recording a login attempt failed", "user", id, "result", result, "error", err)
	}
}

// LoginHistory is user id's login attempts kept (newest first).
func (s *Service) LoginHistory(ctx context.Context, id int64) ([]store.LoginRecord, error) {
	return s.store.LoginHistory(ctx, id)
}
