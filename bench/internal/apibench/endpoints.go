package apibench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/bench/internal/load"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/seed"
	"userve.dev/userve/server/store"
)

// endpoint is one row of the table: the request through the server and the
// same store work issued directly through the driver (the ceiling).
type endpoint struct {
	name        string
	request     string
	driverQuery string
	server      load.Op
	driver      load.Op
	// storeBound marks a query the test store answers by decoding a large
	// share of the documents (FerretDB 1.24 pushes down only top-level
	// equality and $ne, no $regex, range, sort or limit): it runs last,
	// because the store keeps working on abandoned requests for minutes and
	// would slow every cell after it.
	storeBound bool
}

// The seed's list filters (MinApp's v2.0 example): nickname contains "Tom",
// male, signed up after 2017-01-01, newest first.
const (
	listV20Query   = "nickname__contains=Tom&gender=1&created_at__gt=1483228800&order_by=-created_at"
	listCreatedGT  = 1483228800
	whereJSON      = `{"$and":[{"gender":{"$eq":2}},{"level":{"$gte":3}}]}`
	pageLimit      = 20
	walletAccount  = "wallet"
	creditMaxCents = 100
)

// target is what the endpoints act on.
type target struct {
	base      string
	http      *http.Client // checks and set-up
	raw       *rawClient   // the load
	db        *mongo.Database
	profiles  int64
	logins    int64
	usernames []string      // app users with a name, for GET /api/v2/users/{name}
	runID     string        // makes idempotency keys unique across runs on one store
	keys      *atomic.Int64 // shared by copies of the target
}

// at is a copy of the target aimed at another server (its own connections).
func (t *target) at(base string) *target {
	c := *t
	c.base, c.raw = base, newRawClient(strings.TrimPrefix(base, "http://"), 256)
	return &c
}

// serverOps are the server sides of the endpoints, by name.
func (t *target) serverOps() map[string]load.Op {
	ops := map[string]load.Op{}
	for _, ep := range t.endpoints() {
		ops[ep.name] = ep.server
	}
	return ops
}

func (t *target) endpoints() []endpoint {
	profiles := t.db.Collection(store.ColProfiles)
	// The seed lists' queries as the store compiles them (store.Filter.BSON:
	// one flat document, scalar equality as {f: v}), so that both sides
	// send FerretDB the same query and it pushes the same part (gender) down.
	listFilter := store.All(
		store.Where(store.FieldNickname, store.OpContains, "Tom"),
		store.Where(store.FieldGender, store.OpEq, int64(1)),
		store.Where(store.FieldCreatedAt, store.OpGt, time.Unix(listCreatedGT, 0).UTC()),
	).BSON()
	newestFirst := bson.D{{Key: store.FieldCreatedAt, Value: -1}, {Key: store.FieldID, Value: -1}}
	whereFilter := store.All(
		store.Where(store.FieldGender, store.OpEq, int64(2)),
		store.Where(store.CustomFieldPath("level"), store.OpGte, int64(3)),
	).BSON()
	whereQuery := "where=" + url.QueryEscape(whereJSON) + "&order_by=-created_at&limit=" + strconv.Itoa(pageLimit)

	return []endpoint{
		{
			name:        report.EndpointListV20,
			request:     "GET /userve/v2.0/miniapp/user_profile/?" + listV20Query,
			driverQuery: "find(profiles, {nickname: {$regex: Tom}, gender: 1, created_at: {$gt: 2017-01-01}}).sort(-created_at,-_id).limit(21) + countDocuments(same) when the page is full",
			storeBound:  true,
			server: func(ctx context.Context, _ int, _ int64) error {
				return t.admin(ctx, http.MethodGet, "/userve/v2.0/miniapp/user_profile/?"+listV20Query, nil, http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, _ int64) error {
				return findCounted(ctx, profiles, listFilter, options.Find().SetSort(newestFirst).SetLimit(pageLimit+1))
			},
		},
		{
			name:        report.EndpointListV22,
			request:     "GET /userve/v2.2/miniapp/user_profile/?where=" + whereJSON + "&order_by=-created_at&limit=20",
			driverQuery: "find(profiles, {gender: 2, custom.level: {$gte: 3}}).sort(-created_at,-_id).limit(21)",
			storeBound:  true,
			server: func(ctx context.Context, _ int, _ int64) error {
				return t.admin(ctx, http.MethodGet, "/userve/v2.2/miniapp/user_profile/?"+whereQuery, nil, http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, _ int64) error {
				return findAll(ctx, profiles, whereFilter, options.Find().SetSort(newestFirst).SetLimit(pageLimit+1))
			},
		},
		{
			name:        report.EndpointListOpenID,
			request:     "GET /userve/v2.0/miniapp/user_profile/?openid={random user's}",
			driverQuery: "find(profiles, {openid: x}).sort(_id).limit(21) (one match: the page gives the total, as the store does; no count)",
			server: func(ctx context.Context, _ int, seq int64) error {
				return t.admin(ctx, http.MethodGet, "/userve/v2.0/miniapp/user_profile/?openid="+url.QueryEscape(seed.OpenID(t.userID(seq))), nil, http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, seq int64) error {
				f := bson.D{{Key: store.FieldOpenID, Value: bson.D{{Key: "$eq", Value: seed.OpenID(t.userID(seq))}}}}
				return findCounted(ctx, profiles, f, options.Find().SetSort(bson.D{{Key: store.FieldID, Value: 1}}).SetLimit(pageLimit+1))
			},
		},
		{
			name:        report.EndpointWhereOpenID,
			request:     `GET /userve/v2.2/miniapp/user_profile/?where={"openid":{"$eq": random user's}}&return_total_count=1`,
			driverQuery: "find(profiles, {openid: x}).sort(_id).limit(21) (one match: the page gives the total, as the store does; no count)",
			server: func(ctx context.Context, _ int, seq int64) error {
				where := fmt.Sprintf(`{"openid":{"$eq":%q}}`, seed.OpenID(t.userID(seq)))
				return t.admin(ctx, http.MethodGet, "/userve/v2.2/miniapp/user_profile/?return_total_count=1&where="+url.QueryEscape(where), nil, http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, seq int64) error {
				f := bson.D{{Key: store.FieldOpenID, Value: bson.D{{Key: "$eq", Value: seed.OpenID(t.userID(seq))}}}}
				return findCounted(ctx, profiles, f, options.Find().SetSort(bson.D{{Key: store.FieldID, Value: 1}}).SetLimit(pageLimit+1))
			},
		},
		{
			name:        report.EndpointDetail,
			request:     "GET /userve/v2.0/miniapp/user_profile/{random id}/",
			driverQuery: "findOne(profiles, {_id: id})",
			server: func(ctx context.Context, _ int, seq int64) error {
				return t.admin(ctx, http.MethodGet, fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", t.userID(seq)), nil, http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, seq int64) error {
				_, err := profiles.FindOne(ctx, bson.D{{Key: store.FieldID, Value: t.userID(seq)}}).Raw()
				return err
			},
		},
		{
			name:        report.EndpointPut,
			request:     `PUT /userve/v2.0/miniapp/user_profile/{random id}/ {"level": n}`,
			driverQuery: "findOneAndUpdate(profiles, {_id: id}, $set{custom.level, updated_at}, returnDocument: after)",
			server: func(ctx context.Context, _ int, seq int64) error {
				body := []byte(fmt.Sprintf(`{"level":%d}`, seq%11))
				return t.admin(ctx, http.MethodPut, fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", t.userID(seq)), body, http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, seq int64) error {
				update := bson.D{{Key: "$set", Value: bson.D{
					{Key: store.FieldUpdatedAt, Value: time.Now().UTC().Truncate(time.Second)},
					{Key: store.CustomFieldPath("level"), Value: seq % 11},
				}}}
				_, err := profiles.FindOneAndUpdate(ctx, bson.D{{Key: store.FieldID, Value: t.userID(seq)}}, update,
					options.FindOneAndUpdate().SetReturnDocument(options.After)).Raw()
				return err
			},
		},
		{
			name:        report.EndpointUserName,
			request:     "GET /api/v2/users/{random username}",
			driverQuery: "findOne(profiles, {username: name}) + aggregate(follows, store.FollowCountsPipeline([id])): both follow counts in one aggregation, as the server",
			server: func(ctx context.Context, _ int, seq int64) error {
				return t.do(ctx, http.MethodGet, "/api/v2/users/"+url.PathEscape(t.username(seq)), nil, "", http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, seq int64) error {
				p, err := profiles.FindOne(ctx, bson.D{{Key: store.FieldUsername, Value: t.username(seq)}}).Raw()
				if err != nil {
					return err
				}
				id, ok := p.Lookup(store.FieldID).AsInt64OK()
				if !ok {
					return fmt.Errorf("profile %s: _id is not an integer", t.username(seq))
				}
				cur, err := t.db.Collection(store.ColFollows).Aggregate(ctx, store.FollowCountsPipeline([]int64{id}))
				if err != nil {
					return err
				}
				var rows []bson.Raw
				return cur.All(ctx, &rows)
			},
		},
		{
			name:        report.EndpointLogin,
			request:     `POST /api/v2/auth/login {"login": name, "password": …} (bcrypt)`,
			driverQuery: "findOne(profiles, {username: name}) (the password check is not a store query)",
			server: func(ctx context.Context, _ int, seq int64) error {
				body, _ := json.Marshal(map[string]string{"login": seed.LoginUsername(t.loginID(seq)), "password": seed.LoginPassword})
				return t.do(ctx, http.MethodPost, "/api/v2/auth/login", body, "", http.StatusOK)
			},
			driver: func(ctx context.Context, _ int, seq int64) error {
				_, err := profiles.FindOne(ctx, bson.D{{Key: store.FieldUsername, Value: seed.LoginUsername(t.loginID(seq))}}).Raw()
				return err
			},
		},
		t.creditEndpoint(),
	}
}

// creditBody is one idempotent wallet credit.
func (t *target) creditBody(seq int64) []byte {
	body, _ := json.Marshal(map[string]any{
		"user_id": t.userID(seq), "account": walletAccount, "amount": 1 + seq%creditMaxCents,
		"title": "bench credit", "idempotency_key": t.newKey("server"),
	})
	return body
}

// newKey is an idempotency key never used before (seq restarts with every
// cell, so it cannot serve).
func (t *target) newKey(side string) string {
	return fmt.Sprintf("bench-%s-%s-%d", side, t.runID, t.keys.Add(1))
}

// userID spreads requests over every user (a multiplicative hash of seq).
func (t *target) userID(seq int64) int64 { return 1 + int64(mix(uint64(seq))%uint64(t.profiles)) }

func (t *target) loginID(seq int64) int64 { return 1 + int64(mix(uint64(seq))%uint64(t.logins)) }

func (t *target) username(seq int64) string {
	return t.usernames[mix(uint64(seq))%uint64(len(t.usernames))]
}

// mix is splitmix64's finalizer: consecutive seqs land far apart.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (t *target) admin(ctx context.Context, method, path string, body []byte, want int) error {
	return t.do(ctx, method, path, body, "Bearer "+adminToken, want)
}

// do sends one request of the load (through the lean client) and reads the
// answer; another status than want is an error quoting the body.
func (t *target) do(ctx context.Context, method, path string, body []byte, auth string, want int) error {
	res, err := t.raw.Do(ctx, method, path, body, auth, true)
	if err != nil {
		return err
	}
	if res.Status != want {
		return &statusError{fmt.Sprintf("%s %s", method, path), res.Status, want, string(res.Body[:min(len(res.Body), 300)])}
	}
	return nil
}

func (t *target) fetch(ctx context.Context, method, path string, body []byte, auth string, want int, keep bool) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, &statusError{fmt.Sprintf("%s %s", method, path), resp.StatusCode, want, string(msg)}
	}
	if keep {
		return io.ReadAll(resp.Body)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return nil, err
}

// statusError is an answer with an unexpected status.
type statusError struct {
	request   string
	got, want int
	body      string
}

func (e *statusError) Error() string {
	req := e.request
	if len(req) > 60 {
		req = req[:60] + "…"
	}
	return fmt.Sprintf("%s: status %d, want %d: %s", req, e.got, e.want, e.body)
}

// findCounted is a first page plus its total as the store gets it: counted
// only when the page is full (store.countMatches).
func findCounted(ctx context.Context, col *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder) error {
	cur, err := col.Find(ctx, filter, opts)
	if err != nil {
		return err
	}
	n := 0
	for cur.Next(ctx) {
		n++
	}
	_ = cur.Close(ctx)
	if err := cur.Err(); err != nil || n <= pageLimit {
		return err
	}
	_, err = col.CountDocuments(ctx, filter)
	return err
}

func findAll(ctx context.Context, col *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder) error {
	cur, err := col.Find(ctx, filter, opts)
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
	}
	return cur.Err()
}
