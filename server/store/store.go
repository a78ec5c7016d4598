// Package store is the tenant's user store in MongoDB. It is the only package
// of the server that speaks to MongoDB: handlers call its methods and map its
// three errors (ErrNotFound, ErrConflict, ErrUnavailable) to HTTP statuses.
//
// Everything here must work on real MongoDB and on FerretDB v1.24 (the test
// store): no multi-document transactions, no TTL or partial indexes, no
// collation.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"userve.dev/userve/api/v1alpha1"
)

// Collection names. Issue 4 adds its own next to its code.
const (
	ColProfiles = "profiles"
	ColGroups   = "groups"
	ColCounters = "counters"
)

// Errors handlers map to statuses: 404, 400 and 503.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("already taken")
	ErrUnavailable = errors.New("user store unavailable")
)

// ConflictError is a unique-index violation. Field is the document field
// (e.g. "openid", "email"); errors.Is(err, ErrConflict) holds.
type ConflictError struct{ Field string }

func (e *ConflictError) Error() string {
	if e.Field == "" {
		return "a unique value is already taken"
	}
	return e.Field + " is already taken"
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Timeouts that bound how long a request waits while MongoDB is away: server
// selection fails after ServerSelectionTimeout, and every operation is cut at
// OpTimeout even when the caller's context has no deadline.
const (
	DefaultServerSelectionTimeout = 2 * time.Second
	DefaultOpTimeout              = 5 * time.Second
)

// Store is one tenant's database.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	cols   map[string]*mongo.Collection // every collection, made once
	log    *slog.Logger

	opTimeout    time.Duration
	customFields []string // custom profile fields that get an index

	// Driver monitors (WithMonitors): what the client sends and the
	// connections it opens.
	commandMonitor *event.CommandMonitor
	poolMonitor    *event.PoolMonitor

	scramKeys *SCRAMKeys // WithSCRAMKeys

	indexMemo *IndexMemo // WithIndexMemo
	indexKey  [32]byte   // what the memo's verifications must cover (indexKey)

	constrained atomic.Bool // every unique index exists: unique constraints hold (Ready)
	indexed     atomic.Bool // every index exists (Indexed)

	triedIDs sync.Map // sequence name -> *triedIDs (see nextUntriedID)

	importKnown sync.Map // import format -> *knownIDs (see importSources)
	importFresh sync.Map // import format -> *freshIDs (see raiseImportSequence)
	importSeqMu sync.Mutex

	exportSlots chan struct{} // see ExportUsers

	events       map[v1alpha1.EventType]bool // subscribed event types (events.go)
	eventsNotify atomic.Pointer[func()]

	ledgerLease time.Duration            // WithLedgerLease
	settleWait  time.Duration            // WithSettleWait
	faultAt     func(stage string) error // WithFault

	// now is the clock; times are stored at second precision because both
	// dialects show seconds and filters compare unix seconds.
	now func() time.Time
}

// Option adjusts Open and Connect.
type Option func(*Store)

// WithCustomFieldIndexes indexes these custom profile fields (custom.<name>)
// so that filters and sorts on them are served by an index.
func WithCustomFieldIndexes(names ...string) Option {
	return func(s *Store) { s.customFields = append(s.customFields, names...) }
}

// WithLogger logs index problems and background retries.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithMonitors sees the driver's commands and connection events (nil:
// none), e.g. to count the connections a client opens and authenticates.
func WithMonitors(commands *event.CommandMonitor, connections *event.PoolMonitor) Option {
	return func(s *Store) { s.commandMonitor, s.poolMonitor = commands, connections }
}

// WithOpTimeout bounds each operation.
func WithOpTimeout(d time.Duration) Option { return func(s *Store) { s.opTimeout = d } }

// WithLedgerLease sets how long one actor holds a ledger entry before
// another may finish it (DefaultLedgerLease).
func WithLedgerLease(d time.Duration) Option { return func(s *Store) { s.ledgerLease = d } }

// WithSettleWait sets how long a retry waits for the live holder of its
// ledger entry before answering ErrInProgress (DefaultSettleWait).
func WithSettleWait(d time.Duration) Option { return func(s *Store) { s.settleWait = d } }

// WithFault calls f at each stage of a ledger entry ("adjusted",
// "debited", "credited", "refunded": right after the wallet write, before
// the entry records it) and after each stage of a merge ("from-unset",
// "identities", "groups", "follows", "wallet", "deleted"); an error from f
// stops the work there, as a crash would (tests).
func WithFault(f func(stage string) error) Option {
	return func(s *Store) { s.faultAt = f }
}

// fault is the WithFault hook at a stage of a ledger entry or a merge.
func (s *Store) fault(stage string) error {
	if s.faultAt != nil {
		return s.faultAt(stage)
	}
	return nil
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open connects and ensures every index before returning.
func Open(ctx context.Context, uri, database string, opts ...Option) (*Store, error) {
	s, err := Connect(uri, database, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureIndexes(ctx); err != nil {
		_ = s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

// Connect prepares a client without talking to MongoDB yet (the driver
// connects lazily and reconnects by itself). Call EnsureIndexes before
// serving writes; Ready reports whether it has succeeded.
func Connect(uri, database string, opts ...Option) (*Store, error) {
	if database == "" {
		return nil, errors.New("store: empty database name")
	}
	s := &Store{log: slog.Default(), opTimeout: DefaultOpTimeout, now: time.Now, exportSlots: make(chan struct{}, maxExports),
		ledgerLease: DefaultLedgerLease, settleWait: DefaultSettleWait}
	for _, o := range opts {
		o(s)
	}
	co := options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(DefaultServerSelectionTimeout).
		SetConnectTimeout(DefaultServerSelectionTimeout).
		SetAppName("userve").
		SetDialer(&bufferedDialer{})
	if s.commandMonitor != nil {
		co.SetMonitor(s.commandMonitor)
	}
	if s.poolMonitor != nil {
		co.SetPoolMonitor(s.poolMonitor)
	}
	useSCRAMKeys(co, s.scramKeys)
	if err := co.Validate(); err != nil {
		return nil, fmt.Errorf("store: MongoDB URI: %w", err)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store: MongoDB URI: %w", err)
	}
	s.client = client
	s.db = client.Database(database)
	if s.indexMemo != nil {
		s.indexKey = indexKey(uri, database, s.wantedIndexes())
	}
	s.cols = map[string]*mongo.Collection{}
	for _, name := range []string{ColProfiles, ColGroups, ColCounters, ColCodes, ColFollows,
		ColRateLimits, ColRevocations, ColWallets, ColLedger, ColImportRemaps, ColImportPending} {
		s.cols[name] = s.db.Collection(name)
	}
	return s, nil
}

// Database is the tenant database's name.
func (s *Store) Database() string { return s.db.Name() }

// Ready reports whether EnsureIndexes or EnsureUniqueIndexes has
// succeeded: the unique constraints hold, the store may serve.
func (s *Store) Ready() bool { return s.constrained.Load() }

// Indexed reports whether EnsureIndexes has succeeded: every index
// exists, those that only serve queries too.
func (s *Store) Indexed() bool { return s.indexed.Load() }

// Ping checks that MongoDB answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return classify(s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err())
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// DropDatabase removes the tenant's database with all its data.
func (s *Store) DropDatabase(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return classify(s.db.Drop(ctx))
}

// Now is the store's clock at second precision, UTC.
func (s *Store) Now() time.Time { return s.now().UTC().Truncate(time.Second) }

// opContext bounds one store operation.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

func (s *Store) col(name string) *mongo.Collection {
	if c, ok := s.cols[name]; ok {
		return c
	}
	return s.db.Collection(name)
}

// decodeOne and decodeAll decode with bson.Unmarshal, which reuses pooled
// readers: the driver's own Decode allocates a 4 KiB buffered reader for
// every document, a fifth of all the bytes a profile read allocated.
func decodeOne(res *mongo.SingleResult, v any) error {
	raw, err := res.Raw()
	if err != nil {
		return err
	}
	return bson.Unmarshal(raw, v)
}

func decodeAll[T any](ctx context.Context, cur *mongo.Cursor, out *[]T) error {
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		var v T
		if err := bson.Unmarshal(cur.Current, &v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return cur.Err()
}

// ---- sequences ------------------------------------------------------------

// NextID is the next value of a per-tenant sequence ("profiles", "groups",
// ...), starting at 1. On MongoDB it is atomic. FerretDB v1.24 loses
// concurrent updates, so two callers may get the same value there: insert
// through InsertWithNextID, which the unique _id makes safe on both.
func (s *Store) NextID(ctx context.Context, sequence string) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	// Two first calls may both try to insert the counter; the loser gets a
	// duplicate key and simply increments the now existing one.
	for attempt := 0; ; attempt++ {
		err := decodeOne(s.col(ColCounters).FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: sequence}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
			opts), &doc)
		if err == nil {
			return doc.Seq, nil
		}
		if mongo.IsDuplicateKeyError(err) && attempt < 3 {
			continue
		}
		return 0, classify(err)
	}
}

// nextUntriedID is the id to try for a new document of sequence: the
// counter's next value, unless this process has tried that id before. On
// MongoDB the counter is an atomic $inc and never repeats. FerretDB's $inc
// is not isolated: concurrent callers get the same value and the counter
// can even fall back, so there a repeat is answered with an id above every
// id tried so far, instead of a herd of callers colliding on one id again
// and again. Ids of other replicas can still be taken; the insert then
// fails and the next try is another id. The unique _id keeps ids unique;
// only gaps are possible.
func (s *Store) nextUntriedID(ctx context.Context, sequence string) (int64, error) {
	next, err := s.NextID(ctx, sequence)
	if err != nil {
		return 0, err
	}
	t, _ := s.triedIDs.LoadOrStore(sequence, &triedIDs{tried: map[int64]struct{}{}})
	return t.(*triedIDs).pick(next), nil
}

// triedIDs are the ids of one sequence this process tried recently: a hint
// against FerretDB's repeating counter, never needed for correctness.
type triedIDs struct {
	mu    sync.Mutex
	tried map[int64]struct{}
	max   int64
}

// idMemory is how far below the highest tried id tries are kept.
const idMemory = 1024

// pick returns next, or the lowest id above all tried ones if next was
// tried before, and records it as tried.
func (t *triedIDs) pick(next int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.tried[next]; seen {
		next = t.max + 1
	}
	t.tried[next] = struct{}{}
	t.max = max(t.max, next)
	if len(t.tried) > 2*idMemory {
		for id := range t.tried {
			if id <= t.max-idMemory {
				delete(t.tried, id)
			}
		}
	}
	return next
}

// maxIDAttempts bounds InsertWithNextID's retries on id collisions.
const maxIDAttempts = 50

// maxBusyAttempts bounds the tries of each step of InsertWithNextID while
// FerretDB answers SQLITE_BUSY (backoff of at most a few milliseconds
// between them, so well under a second in all).
const maxBusyAttempts = 8

// InsertWithNextID inserts build(id) into collection, id being the next
// value of sequence and the document's _id. When that _id is already taken
// (a lost counter update on FerretDB) it takes another id; any other unique
// violation is returned as a *ConflictError. It returns the id used.
//
// Each step is retried while the store is busy (SQLITE_BUSY): callers such
// as registration have already used up a single-use code, so a busy
// moment must not fail them. A busy write changed nothing, so retrying it
// is safe. SQLITE_BUSY cannot be provoked on demand, so the wiring is
// covered by TestConcurrentCreatesGetDistinctIDs (concurrent creates, which
// make FerretDB busy now and then, must all succeed) and the policy by
// TestRetryTransientUpToIsBounded.
func (s *Store) InsertWithNextID(ctx context.Context, collection, sequence string, build func(id int64) any) (int64, error) {
	for attempt := 0; attempt < maxIDAttempts; attempt++ {
		var id int64
		err := retryTransientUpTo(ctx, maxBusyAttempts, func() error {
			var err error
			id, err = s.nextUntriedID(ctx, sequence)
			return err
		})
		if err != nil {
			return 0, err
		}
		err = retryTransientUpTo(ctx, maxBusyAttempts, func() error {
			return s.insert(ctx, collection, build(id))
		})
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrConflict) {
			return 0, err
		}
		var taken bool
		cerr := retryTransientUpTo(ctx, maxBusyAttempts, func() error {
			var err error
			taken, err = s.exists(ctx, collection, bson.D{{Key: "_id", Value: id}})
			return err
		})
		if cerr != nil {
			return 0, cerr
		}
		if !taken {
			return 0, err
		}
		if attempt > 0 {
			// The counter is behind the ids in use (an import wrote ids
			// above it, or FerretDB lost an update): move it past them.
			if rerr := s.raiseSequenceToMax(ctx, collection, sequence); rerr != nil {
				s.log.Warn("raising a sequence failed", "sequence", sequence, "error", rerr)
			}
		}
	}
	return 0, fmt.Errorf("store: no free id in %s after %d attempts", sequence, maxIDAttempts)
}

func (s *Store) insert(ctx context.Context, collection string, doc any) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(collection).InsertOne(ctx, doc)
	return classify(err)
}

func (s *Store) exists(ctx context.Context, collection string, filter bson.D) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	n, err := s.col(collection).CountDocuments(ctx, filter, options.Count().SetLimit(1))
	return n > 0, classify(err)
}

// ---- errors ---------------------------------------------------------------

// classify maps driver errors to the package's errors; other errors pass
// through wrapped (they are bugs or server-side faults: 500).
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return ErrNotFound
	case mongo.IsDuplicateKeyError(err), uniqueViolation(err):
		return conflictFrom(err)
	case isUnavailable(err), transient(err):
		// The message stays in the chain: transient() reads it to retry.
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("store: %w", err)
}

func isUnavailable(err error) bool {
	var sse topology.ServerSelectionError
	var ce topology.ConnectionError
	// A pool cleared after a failed handshake (FerretDB's SCRAM under load
	// answers "unable to authenticate"): the driver calls it retryable, and
	// it hides the connection error it wraps.
	var cleared driver.RetryablePoolError
	return mongo.IsTimeout(err) || mongo.IsNetworkError(err) ||
		errors.As(err, &sse) || errors.As(err, &ce) ||
		(errors.As(err, &cleared) && cleared.Retryable()) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, mongo.ErrClientDisconnected)
}

// uniqueViolation is FerretDB's findAndModify refusing an update that
// breaks a unique index: an InternalError quoting SQLite ("UNIQUE
// constraint failed: index 'profiles_86daf527_openid_unique'"), not the
// duplicate key error (11000) its inserts give.
func uniqueViolation(err error) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// conflictFrom names the field of a duplicate key error from the index name
// in the server's message ("... index: openid_unique dup key: ...").
func conflictFrom(err error) error {
	msg := err.Error()
	for name, field := range uniqueFieldByIndex() {
		if strings.Contains(msg, "index: "+name+" ") || strings.Contains(msg, "index: "+name+"\"") ||
			strings.HasSuffix(msg, "index: "+name) || strings.Contains(msg, "_"+name+"'") {
			return &ConflictError{Field: field}
		}
	}
	return &ConflictError{}
}
