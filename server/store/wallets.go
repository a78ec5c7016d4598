package store

// Wallets and the ledger, correct without multi-document transactions and
// without trusting conditional updates to be atomic.
//
// FerretDB v1.24 (the test store) applies an update as read, modify, write
// with no isolation: 64 concurrent {$inc: {n: 1}} leave n far below 64, and
// a filter such as {balance: {$gte: 10}} is checked against a stale read.
// The one write it does make atomic is an insert under a unique index
// (including _id). So every balance change here is an insert that can only
// succeed once, and MongoDB gives the same guarantees.
//
// # Documents
//
// `wallets` holds versions of each user's wallet: _id "<user>:<seq>", the
// three balances (`wallet`, `new_wallet`, `currency`), income/expense totals,
// and `step`, the ledger step that produced the version. The current wallet
// is the version with the highest seq; version 0 (all zero) opens it.
// `ledger` holds one entry per movement (_id = sequential id from
// `counters`, gaps possible; see Store.nextUntriedID) with a unique
// `idempotency_key` and a `state`.
//
// # One step = one insert
//
// To move delta on a user's account for step "<entry>:<nonce>:<d|c|r|a>", read the
// latest version n, compute the balances, and insert version n+1 carrying
// the step. Two unique keys decide every race:
//
//   - _id "<user>:<n+1>": two writers who read the same version cannot both
//     append; the loser re-reads and retries, so no update is ever lost and a
//     balance is checked against the version it replaces (never negative);
//   - `step` (unique index): a step is applied at most once, forever. A
//     retry, a second replica or a stalled process finding the step already
//     recorded takes it as done.
//
// A debit the balance cannot cover is recorded as a *void* version (same
// balances, the step's name, void=true). The void and the debit compete for
// the same unique step, so "refused" and "applied" can never both happen,
// whoever decides and however late.
//
// # States
//
//	adjust   (management credit/debit): pending -> completed | refused
//	transfer (user to user):            pending -> debited -> completed
//	                                       |               -> refunded
//	                                       +-> refused
//
// A transfer debits the sender (step "<id>:d"), records `debited`, credits
// the receiver ("<id>:c") and records `completed`. If the receiver's wallet
// is gone by then (user deleted) the sender gets the amount back ("<id>:r")
// and the entry ends `refunded`. A refused first step (void) ends the entry
// `refused`: nothing moved, the caller gets ErrInsufficientFunds, and the
// key is released for a later try.
//
// # Exactly once per key, and recovery
//
// The unique idempotency_key makes the entry the single claim on a key: a
// request inserts its entry first, and only when that fails on a unique key
// does it look the key up; a retry so finds the entry and answers with it,
// finishing it first if needed. An entry
// left `pending` or `debited` by a crash is finished by whoever finds it with
// its lease expired: a retry with the same key, RecoverLedger (the first
// requests after a start, then at most once a minute per replica) and
// GetWallet / the order lists (the reader's own entries, before reading).
// Finishing re-runs the steps from the recorded state; the unique steps make
// the re-run skip what had happened, so a transfer stopped after its debit is
// completed, never debited twice and never lost. The lease (lease_owner,
// lease_until) only keeps replicas from doing the same work at once;
// correctness does not depend on it or on any clock.
//
// Invariants the tests check after concurrent storms and crashes: per user
// and account, balance = completed adjusts + completed incoming transfers -
// completed outgoing transfers; no version has a negative balance; no step
// appears twice.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of this file.
const (
	ColWallets = "wallets"
	ColLedger  = "ledger"
)

// Account names one balance of a wallet.
type Account string

const (
	AccountWallet    Account = "wallet"
	AccountNewWallet Account = "new_wallet"
	AccountCurrency  Account = "currency"
)

// ParseAccount checks an account name.
func ParseAccount(s string) (Account, bool) {
	switch a := Account(s); a {
	case AccountWallet, AccountNewWallet, AccountCurrency:
		return a, true
	}
	return "", false
}

// MaxAmount bounds one movement, MaxBalance one balance, far from int64
// overflow.
const (
	MaxAmount  = int64(1e12)
	MaxBalance = int64(1e15)
)

// Ledger entry kinds and states.
const (
	KindAdjust   = "adjust"
	KindTransfer = "transfer"

	StatePending   = "pending"
	StateDebited   = "debited"
	StateCompleted = "completed"
	StateRefunded  = "refunded"
	StateRefused   = "refused" // the first step was refused: nothing moved
)

// Wallet errors.
var (
	ErrInsufficientFunds   = errors.New("balance is too low")
	ErrBalanceLimit        = fmt.Errorf("balance would exceed %d", MaxBalance)
	ErrIdempotencyMismatch = errors.New("idempotency key was already used for a different request")
	ErrInProgress          = errors.New("a request with this idempotency key is still being processed; retry shortly")
	ErrWalletBusy          = errors.New("wallet is too busy; retry shortly")
)

// LedgerLease is how long one actor works on an entry before others may
// take over; processBudget is how long an actor tries.
var (
	LedgerLease   = 60 * time.Second
	processBudget = 30 * time.Second
	// SettleWait is how long a retry waits for a live holder to finish
	// before answering ErrInProgress.
	SettleWait = 5 * time.Second
)

// Wallet is a user's current balances (one version of the wallet).
type Wallet struct {
	ID        string    `bson:"_id"` // "<user>:<seq>"
	UserID    int64     `bson:"user_id"`
	Seq       int64     `bson:"seq"`
	Wallet    int64     `bson:"wallet"`
	NewWallet int64     `bson:"new_wallet"`
	Currency  int64     `bson:"currency"`
	Totals    Totals    `bson:"totals"`
	Step      string    `bson:"step,omitempty"` // the ledger step that made this version
	Void      bool      `bson:"void,omitempty"` // the step was refused; nothing moved
	Created   time.Time `bson:"created_at"`     // when the wallet was opened
	Updated   time.Time `bson:"updated_at"`     // when this version was written
}

// Totals are income and expenses per account.
type Totals struct {
	WalletIncome      int64 `bson:"wallet_income"`
	WalletExpenses    int64 `bson:"wallet_expenses"`
	NewWalletIncome   int64 `bson:"new_wallet_income"`
	NewWalletExpenses int64 `bson:"new_wallet_expenses"`
	CurrencyIncome    int64 `bson:"currency_income"`
	CurrencyExpenses  int64 `bson:"currency_expenses"`
}

// Balance is the balance of one account.
func (w *Wallet) Balance(a Account) int64 {
	switch a {
	case AccountWallet:
		return w.Wallet
	case AccountNewWallet:
		return w.NewWallet
	case AccountCurrency:
		return w.Currency
	}
	return 0
}

func (w *Wallet) add(a Account, delta int64) {
	switch a {
	case AccountWallet:
		w.Wallet += delta
	case AccountNewWallet:
		w.NewWallet += delta
	case AccountCurrency:
		w.Currency += delta
	}
}

func (t *Totals) add(a Account, income bool, delta int64) {
	switch {
	case a == AccountWallet && income:
		t.WalletIncome += delta
	case a == AccountWallet:
		t.WalletExpenses += delta
	case a == AccountNewWallet && income:
		t.NewWalletIncome += delta
	case a == AccountNewWallet:
		t.NewWalletExpenses += delta
	case a == AccountCurrency && income:
		t.CurrencyIncome += delta
	case a == AccountCurrency:
		t.CurrencyExpenses += delta
	}
}

func walletVersionID(user, seq int64) string {
	return strconv.FormatInt(user, 10) + ":" + strconv.FormatInt(seq, 10)
}

// LedgerEntry is one movement of money.
type LedgerEntry struct {
	ID          int64   `bson:"_id"`
	Key         string  `bson:"idempotency_key"`
	Fingerprint string  `bson:"fingerprint"`
	Kind        string  `bson:"kind"`
	Account     Account `bson:"account"`
	UserID      int64   `bson:"user_id"` // the adjusted user, or the sender
	To          int64   `bson:"to,omitempty"`
	Parties     []int64 `bson:"parties"`
	Amount      int64   `bson:"amount"` // adjust: signed; transfer: > 0
	Title       string  `bson:"title"`
	State       string  `bson:"state"`
	// Nonce names this entry's steps and guards its writes: ids come from a
	// counter that FerretDB may hand out twice (the second insert then fails
	// and takes another), and steps must never be shared by two entries.
	Nonce      string    `bson:"nonce"`
	LeaseOwner string    `bson:"lease_owner"`
	LeaseUntil time.Time `bson:"lease_until"`
	Created    time.Time `bson:"created_at"`
	Updated    time.Time `bson:"updated_at"`
}

// Final reports an entry whose money has stopped moving.
func (e *LedgerEntry) Final() bool { return e.State == StateCompleted || e.State == StateRefunded }

// DeltaFor is the entry's effect on user's balance once final.
func (e *LedgerEntry) DeltaFor(user int64) int64 {
	switch {
	case e.State != StateCompleted:
		return 0
	case e.Kind == KindAdjust && e.UserID == user:
		return e.Amount
	case e.Kind == KindTransfer && e.UserID == user:
		return -e.Amount
	case e.Kind == KindTransfer && e.To == user:
		return e.Amount
	}
	return 0
}

var unfinished = bson.A{StatePending, StateDebited}

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColWallets, Name: "step_unique", Keys: bson.D{{Key: "step", Value: 1}}, Unique: true, Field: "step"},
		IndexSpec{Collection: ColWallets, Name: "user_seq", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "seq", Value: -1}}},
		IndexSpec{Collection: ColLedger, Name: "idempotency_key_unique", Keys: bson.D{{Key: "idempotency_key", Value: 1}}, Unique: true, Field: "idempotency_key"},
		IndexSpec{Collection: ColLedger, Name: "parties_account_id", Keys: bson.D{{Key: "parties", Value: 1}, {Key: "account", Value: 1}, {Key: "_id", Value: -1}}},
		IndexSpec{Collection: ColLedger, Name: "state_parties", Keys: bson.D{{Key: "state", Value: 1}, {Key: "parties", Value: 1}, {Key: "lease_until", Value: 1}}},
		IndexSpec{Collection: ColLedger, Name: "account_id", Keys: bson.D{{Key: "account", Value: 1}, {Key: "_id", Value: -1}}},
	)
	RegisterUserCleanup(deleteWallet)
}

// ledgerFault lets tests stop a step half-way, as a crash would.
var ledgerFault atomic.Pointer[func(stage string) error]

// SetLedgerFault installs f, called at each stage ("adjusted", "debited",
// "credited", "refunded") right after the wallet write and before the entry
// records it; an error from f stops processing there. For tests only; nil
// removes it.
func SetLedgerFault(f func(stage string) error) {
	if f == nil {
		ledgerFault.Store(nil)
		return
	}
	ledgerFault.Store(&f)
}

func fault(stage string) error {
	if f := ledgerFault.Load(); f != nil {
		return (*f)(stage)
	}
	return nil
}

// EnsureWallet opens the user's wallet (version 0, all zero) if needed.
func (s *Store) EnsureWallet(ctx context.Context, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	err := retryTransient(ctx, func() error {
		_, err := s.col(ColWallets).InsertOne(ctx, Wallet{ID: walletVersionID(user, 0), UserID: user, Created: now, Updated: now})
		return err
	})
	if mongo.IsDuplicateKeyError(err) {
		return nil // already open
	}
	return classify(err)
}

// openWallet is the user's current wallet, opening it first if needed (nil
// then: the caller reads it when it needs it).
func (s *Store) openWallet(ctx context.Context, user int64) (*Wallet, error) {
	w, err := s.latestWallet(ctx, user)
	if errors.Is(err, ErrNotFound) {
		return nil, s.EnsureWallet(ctx, user)
	}
	return w, err
}

// profileExists is ErrNotFound unless the user exists and is not being
// deleted or merged away (tombstones.go).
func (s *Store) profileExists(ctx context.Context, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// No projection: with one, FerretDB 1.24 does not serve _id equality
	// from the primary key and scans every profile.
	var p struct {
		Tombstone *ProfileTombstone `bson:"tombstone"`
	}
	if err := decodeOne(s.col(ColProfiles).FindOne(ctx, bson.D{{Key: FieldID, Value: user}}), &p); err != nil {
		return classify(err)
	}
	if p.Tombstone != nil {
		return ErrNotFound
	}
	return nil
}

// GetWallet is the user's wallet after finishing any of their stalled ledger
// entries; a user who never had money gets zero balances (Created zero).
func (s *Store) GetWallet(ctx context.Context, user int64) (*Wallet, error) {
	if _, err := s.RecoverLedger(ctx, user); err != nil {
		return nil, err
	}
	w, err := s.latestWallet(ctx, user)
	if errors.Is(err, ErrNotFound) {
		return &Wallet{UserID: user}, nil
	}
	return w, err
}

func (s *Store) latestWallet(ctx context.Context, user int64) (*Wallet, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var w Wallet
	err := decodeOne(s.col(ColWallets).FindOne(ctx, bson.D{{Key: "user_id", Value: user}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})), &w)
	if err != nil {
		return nil, classify(err)
	}
	w.Created, w.Updated = w.Created.UTC(), w.Updated.UTC()
	return &w, nil
}

// WalletVersions lists every version of a user's wallet, oldest first (for
// audits and the invariant tests).
func (s *Store) WalletVersions(ctx context.Context, user int64) ([]*Wallet, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColWallets).Find(ctx, bson.D{{Key: "user_id", Value: user}}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var out []*Wallet
	if err := decodeAll(ctx, cur, &out); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// AdjustRequest credits (Amount > 0) or debits (Amount < 0) one account.
type AdjustRequest struct {
	UserID  int64
	Account Account
	Amount  int64
	Title   string
	Key     string // idempotency key, unique per tenant; empty: a fresh one

	// internal is set for the store's own adjusts (imports' opening
	// balances), whose keys are in a namespace clients may not use
	// (ReservedAdjustKey).
	internal bool
}

// ErrReservedKey refuses a client's idempotency key in a namespace the
// store uses for itself.
var ErrReservedKey = errors.New("idempotency key is in a namespace reserved for the service's own entries")

// ReservedAdjustKey reports a management adjust key the store keeps for
// itself: imports book opening balances under OpeningBalanceKey, and a
// client's adjust under such a key would take an import's place.
func ReservedAdjustKey(key string) bool { return strings.HasPrefix(key, openingKeyPrefix) }

// Adjust applies a management credit or debit once per key. It returns the
// entry and whether this call created it (false: a replay of the key).
func (s *Store) Adjust(ctx context.Context, r AdjustRequest) (*LedgerEntry, bool, error) {
	if r.Amount == 0 || r.Amount > MaxAmount || r.Amount < -MaxAmount {
		return nil, false, fmt.Errorf("store: adjust amount %d out of range", r.Amount)
	}
	if _, ok := ParseAccount(string(r.Account)); !ok {
		return nil, false, fmt.Errorf("store: unknown account %q", r.Account)
	}
	if !r.internal && ReservedAdjustKey(r.Key) {
		return nil, false, ErrReservedKey
	}
	key := ledgerKeyAdjust + r.Key
	if r.Key == "" {
		key = ledgerKeyAdjust + "auto:" + randomToken()
	}
	e := &LedgerEntry{
		Key: key, Kind: KindAdjust, Account: r.Account, UserID: r.UserID, Parties: []int64{r.UserID},
		Amount: r.Amount, Title: r.Title,
		Fingerprint: fmt.Sprintf("adjust|%d|%s|%d", r.UserID, r.Account, r.Amount),
	}
	return s.submit(ctx, e, func(ctx context.Context) (*Wallet, error) {
		if err := s.profileExists(ctx, r.UserID); err != nil {
			return nil, err
		}
		return s.openWallet(ctx, r.UserID)
	})
}

// TransferRequest moves Amount (> 0) of Account from one user to another.
type TransferRequest struct {
	From, To int64
	Account  Account
	Amount   int64
	Title    string
	Key      string // idempotency key, scoped to the sender; empty: a fresh one

	// internalKey replaces Key for the store's own transfers (merges): a
	// ledger key outside every namespace a client key lands in
	// (ledgerKeyInternal), so no client can take it first. The sender may
	// be tombstoned: it is the user being merged away.
	internalKey string
}

// Ledger key namespaces. A client's key only ever lands under the first
// two (a transfer's scoped to its sender), so keys the store makes for
// itself live under ledgerKeyInternal, which no client can write.
const (
	ledgerKeyTransfer = "transfer:"
	ledgerKeyAdjust   = "adjust:"
	ledgerKeyInternal = "internal:"
)

// Transfer moves money once per (sender, key), all or nothing.
func (s *Store) Transfer(ctx context.Context, r TransferRequest) (*LedgerEntry, bool, error) {
	if r.Amount <= 0 || r.Amount > MaxAmount {
		return nil, false, fmt.Errorf("store: transfer amount %d out of range", r.Amount)
	}
	if r.From == r.To {
		return nil, false, errors.New("store: transfer to oneself")
	}
	if _, ok := ParseAccount(string(r.Account)); !ok {
		return nil, false, fmt.Errorf("store: unknown account %q", r.Account)
	}
	key := ledgerKeyTransfer + strconv.FormatInt(r.From, 10) + ":" + r.Key
	switch {
	case r.internalKey != "":
		key = ledgerKeyInternal + r.internalKey
	case r.Key == "":
		key = ledgerKeyTransfer + "auto:" + randomToken()
	}
	e := &LedgerEntry{
		Key: key, Kind: KindTransfer, Account: r.Account, UserID: r.From, To: r.To,
		Parties: []int64{r.From, r.To}, Amount: r.Amount, Title: r.Title,
		Fingerprint: transferFingerprint(r),
	}
	return s.submit(ctx, e, func(ctx context.Context) (*Wallet, error) {
		// Neither side may be deleted or merged away, or on its way there
		// (tombstoned): money sent to a user being folded would stay
		// behind on a wallet that is about to go.
		if err := s.profileExists(ctx, r.To); err != nil {
			return nil, err
		}
		if r.internalKey == "" {
			if err := s.profileExists(ctx, r.From); err != nil {
				return nil, err
			}
		}
		if err := s.EnsureWallet(ctx, r.To); err != nil {
			return nil, err
		}
		return s.openWallet(ctx, r.From)
	})
}

// transferFingerprint is what a replay of a transfer's key must repeat.
func transferFingerprint(r TransferRequest) string {
	return fmt.Sprintf("transfer|%d|%d|%s|%d", r.From, r.To, r.Account, r.Amount)
}

// maxSubmitAttempts bounds submit's tries to insert an entry. A try fails
// when its ledger id is taken (nextUntriedID never offers it again) or the
// store is busy, so the bound is only reached when the store is
// overloaded: a transient error then, never ErrInProgress.
const maxSubmitAttempts = 100

// submit claims e's key by inserting e, and drives it; when the key is
// taken it settles the entry holding it instead (a replay). prepare checks
// the request and opens the wallets; it returns the first step's wallet as
// read before the entry exists (nil: not read), which spares the step a
// read when nobody writes that wallet meanwhile.
//
// The insert is the only check of the key: a fresh key (the common case)
// costs no lookup, and a replay finds its entry through the unique index
// violation. The entry's key, not a lookup, decides every race.
func (s *Store) submit(ctx context.Context, e *LedgerEntry, prepare func(context.Context) (*Wallet, error)) (*LedgerEntry, bool, error) {
	known, err := prepare(ctx)
	if errors.Is(err, ErrNotFound) {
		// A replay answers with its entry even when the user is gone since.
		if out, found, rerr := s.replay(ctx, e); found || rerr != nil {
			return out, false, rerr
		}
	}
	if err != nil {
		return nil, false, err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if attempt >= maxSubmitAttempts {
			return nil, false, fmt.Errorf("%w: no ledger id after %d attempts", ErrWalletBusy, attempt)
		}
		id, err := s.nextUntriedID(ctx, ColLedger)
		if transient(err) {
			backoff(attempt)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		now := s.Now()
		n := *e
		n.ID, n.State, n.Nonce = id, StatePending, randomToken()
		n.LeaseOwner, n.LeaseUntil = randomToken(), now.Add(LedgerLease)
		n.Created, n.Updated = now, now
		err = s.insertEntry(ctx, &n)
		if err == nil {
			out, err := s.process(ctx, &n, known)
			return out, true, err
		}
		if transient(err) {
			backoff(attempt)
			continue
		}
		if !errors.Is(err, ErrConflict) {
			return nil, false, err
		}
		// The key is taken (a replay) or the id is: FerretDB's counter
		// hands the same value to concurrent callers.
		out, found, err := s.replay(ctx, e)
		if transient(err) {
			backoff(attempt)
			continue
		}
		if err != nil || found {
			return out, false, err
		}
		// The id was taken; nextUntriedID will not offer it again.
	}
}

// replay answers a request whose key an entry already holds: that entry,
// once final. found is false when no entry holds the key (any more: a
// refused entry gives its key back).
func (s *Store) replay(ctx context.Context, e *LedgerEntry) (out *LedgerEntry, found bool, err error) {
	existing, err := s.entryByKey(ctx, e.Key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if existing.Fingerprint != e.Fingerprint {
		return nil, true, ErrIdempotencyMismatch
	}
	out, err = s.settle(ctx, existing)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil // refused meanwhile: the key is free again
	}
	return out, true, err
}

func (s *Store) insertEntry(ctx context.Context, e *LedgerEntry) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColLedger).InsertOne(ctx, e)
	return classify(err)
}

func (s *Store) entryByKey(ctx context.Context, key string) (*LedgerEntry, error) {
	return s.findEntry(ctx, bson.D{{Key: "idempotency_key", Value: key}})
}

// GetLedgerEntry is one entry by id.
func (s *Store) GetLedgerEntry(ctx context.Context, id int64) (*LedgerEntry, error) {
	return s.findEntry(ctx, bson.D{{Key: "_id", Value: id}})
}

func (s *Store) findEntry(ctx context.Context, filter bson.D) (*LedgerEntry, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var e LedgerEntry
	if err := decodeOne(s.col(ColLedger).FindOne(ctx, filter), &e); err != nil {
		return nil, classify(err)
	}
	e.normalize()
	return &e, nil
}

func (e *LedgerEntry) normalize() {
	e.Created, e.Updated, e.LeaseUntil = e.Created.UTC(), e.Updated.UTC(), e.LeaseUntil.UTC()
}

// settle returns a final entry: finished by this call when its lease has run
// out, or by its live holder while this call waits a little.
func (s *Store) settle(ctx context.Context, e *LedgerEntry) (*LedgerEntry, error) {
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(SettleWait)
	for {
		if e.Final() {
			return e, nil
		}
		if e.State == StateRefused {
			return nil, ErrNotFound // the key is free again
		}
		if !e.LeaseUntil.After(s.Now()) {
			claimed, err := s.claim(ctx, e.ID)
			if err != nil {
				return nil, err
			}
			if claimed != nil {
				return s.process(ctx, claimed, nil)
			}
		}
		if time.Now().After(deadline) {
			return nil, ErrInProgress
		}
		select {
		case <-ctx.Done():
			return nil, ErrInProgress
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
		next, err := s.GetLedgerEntry(ctx, e.ID)
		if err != nil {
			return nil, err // ErrNotFound: refused and removed
		}
		e = next
	}
}

// claim takes the lease of an unfinished entry whose lease has run out. On
// FerretDB two replicas may both win; the unique steps make that harmless.
func (s *Store) claim(ctx context.Context, id int64) (*LedgerEntry, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	var e LedgerEntry
	err := decodeOne(s.col(ColLedger).FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "state", Value: bson.D{{Key: "$in", Value: unfinished}}},
			{Key: "lease_until", Value: bson.D{{Key: "$lte", Value: now}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease_owner", Value: randomToken()}, {Key: "lease_until", Value: now.Add(LedgerLease)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)), &e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	e.normalize()
	return &e, nil
}

// RecoverLedger finishes every unfinished entry of user (0: of everybody)
// whose lease has run out, and returns how many it finished.
func (s *Store) RecoverLedger(ctx context.Context, user int64) (int, error) {
	filter := bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: unfinished}}}}
	if user != 0 {
		filter = append(filter, bson.E{Key: "parties", Value: user})
	}
	filter = append(filter, bson.E{Key: "lease_until", Value: bson.D{{Key: "$lte", Value: s.Now()}}})
	qctx, cancel := s.opContext(ctx)
	cur, err := s.col(ColLedger).Find(qctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(500))
	if err != nil {
		cancel()
		return 0, classify(err)
	}
	var ids []struct {
		ID int64 `bson:"_id"`
	}
	err = decodeAll(qctx, cur, &ids)
	cancel()
	if err != nil {
		return 0, classify(err)
	}
	n := 0
	for _, d := range ids {
		e, err := s.claim(ctx, d.ID)
		if err != nil {
			return n, err
		}
		if e == nil {
			continue // someone else got there first
		}
		if _, err := s.process(ctx, e, nil); err != nil &&
			!errors.Is(err, ErrInsufficientFunds) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrBalanceLimit) {
			return n, err
		}
		n++
	}
	return n, nil
}

// stepResult is how a step ended.
type stepResult int

const (
	stepApplied      stepResult = iota // the money moved (now or earlier)
	stepInsufficient                   // refused: the balance cannot cover a debit
	stepOverLimit                      // refused: a credit past MaxBalance
	stepNoWallet                       // the user has no wallet (deleted)
)

func stepName(e *LedgerEntry, step string) string {
	return strconv.FormatInt(e.ID, 10) + ":" + e.Nonce + ":" + step
}

// applyStep moves delta on user's account once for step by appending a
// wallet version (see the file comment). limit refuses credits past
// MaxBalance.
//
// known, if not nil, is user's wallet as read before the step's entry was
// inserted: no step of a new entry can be recorded yet, so the first try
// appends to it without reading. Should the step be recorded after all (the
// entry stalled past its lease and was finished by another actor) or the
// version be outdated, the insert fails on a unique key and the next try
// reads both, as every try does without known.
func (s *Store) applyStep(ctx context.Context, user int64, acct Account, delta int64, step string, income bool, totalDelta int64, limit bool, known *Wallet) (stepResult, error) {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if attempt >= 200 {
			return 0, ErrWalletBusy
		}
		cur := known
		known = nil
		if cur == nil || cur.UserID != user {
			done, ok, err := s.stepOutcome(ctx, step)
			if transient(err) {
				backoff(attempt)
				continue
			}
			if err != nil || ok {
				return done, err
			}
			cur, err = s.latestWallet(ctx, user)
			if errors.Is(err, ErrNotFound) {
				return stepNoWallet, nil
			}
			if transient(err) {
				backoff(attempt)
				continue
			}
			if err != nil {
				return 0, err
			}
		}
		next := *cur
		next.Seq, next.ID, next.Step, next.Void, next.Updated = cur.Seq+1, walletVersionID(user, cur.Seq+1), step, false, s.Now()
		result := stepApplied
		switch {
		case delta < 0 && cur.Balance(acct)+delta < 0:
			result, next.Void = stepInsufficient, true
		case delta > 0 && limit && cur.Balance(acct)+delta > MaxBalance:
			result, next.Void = stepOverLimit, true
		default:
			next.add(acct, delta)
			next.Totals.add(acct, income, totalDelta)
		}
		ictx, cancel := s.opContext(ctx)
		_, err := s.col(ColWallets).InsertOne(ictx, next)
		cancel()
		if err == nil {
			return result, nil
		}
		if !mongo.IsDuplicateKeyError(err) && !transient(err) {
			return 0, classify(err)
		}
		// Someone appended first (same seq) or took this step, or the
		// store was busy: look again, after a short random pause when the
		// wallet is contended.
		if attempt > 2 || transient(err) {
			backoff(attempt)
		}
	}
}

// IsTransient reports store trouble that passes by itself: MongoDB away or
// slow, FerretDB busy (SQLITE_BUSY), a wallet contended past its retries.
// Both dialects answer it 503 with Retry-After, never 500; it is the one
// place that tells such errors from bugs.
func IsTransient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrWalletBusy) || isUnavailable(err) || transient(err)
}

// transient reports a store error worth retrying at once: FerretDB over
// SQLite answers "database is locked" (SQLITE_BUSY) to writes that collide.
func transient(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// backoff sleeps a random while that grows with the attempt.
func backoff(attempt int) {
	time.Sleep(time.Duration(mrand.Int64N(int64(time.Millisecond)*int64(min(attempt+1, 20))) + 1))
}

// retryTransient runs op until it succeeds, fails for good, or ctx ends.
func retryTransient(ctx context.Context, op func() error) error {
	return retryTransientUpTo(ctx, 50, op)
}

// retryTransientUpTo is retryTransient giving up after attempts calls of op.
func retryTransientUpTo(ctx context.Context, attempts int, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if !transient(err) || attempt+1 >= attempts || ctx.Err() != nil {
			return err
		}
		backoff(attempt)
	}
}

// stepOutcome reports how an already recorded step ended (ok false: not
// recorded yet).
func (s *Store) stepOutcome(ctx context.Context, step string) (stepResult, bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var v Wallet
	err := decodeOne(s.col(ColWallets).FindOne(ctx, bson.D{{Key: "step", Value: step}}), &v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify(err)
	}
	if v.Void {
		return stepInsufficient, true, nil
	}
	return stepApplied, true, nil
}

// process drives e to a final state from wherever it stands. known is the
// wallet of e's first step as read before e was inserted (see applyStep),
// or nil.
func (s *Store) process(parent context.Context, e *LedgerEntry, known *Wallet) (*LedgerEntry, error) {
	ctx, cancel := context.WithTimeout(parent, processBudget)
	defer cancel()
	if e.Kind == KindAdjust && e.State == StatePending {
		income, total := e.Amount > 0, e.Amount
		if e.Amount < 0 {
			total = -e.Amount
		}
		r, err := s.applyStep(ctx, e.UserID, e.Account, e.Amount, stepName(e, "a"), income, total, true, known)
		if err != nil {
			return nil, err
		}
		switch r {
		case stepInsufficient:
			if e.Amount > 0 {
				return nil, s.dropEntry(ctx, e, ErrBalanceLimit)
			}
			return nil, s.dropEntry(ctx, e, ErrInsufficientFunds)
		case stepOverLimit:
			return nil, s.dropEntry(ctx, e, ErrBalanceLimit)
		case stepNoWallet:
			return nil, s.dropEntry(ctx, e, ErrNotFound)
		}
		if err := fault("adjusted"); err != nil {
			return nil, err
		}
		if err := s.setState(ctx, e, StateCompleted); err != nil {
			return nil, err
		}
	}
	if e.Kind == KindTransfer && e.State == StatePending {
		r, err := s.applyStep(ctx, e.UserID, e.Account, -e.Amount, stepName(e, "d"), false, e.Amount, false, known)
		if err != nil {
			return nil, err
		}
		switch r {
		case stepInsufficient:
			return nil, s.dropEntry(ctx, e, ErrInsufficientFunds)
		case stepNoWallet:
			return nil, s.dropEntry(ctx, e, ErrNotFound)
		}
		if err := fault("debited"); err != nil {
			return nil, err
		}
		if err := s.setState(ctx, e, StateDebited); err != nil {
			return nil, err
		}
	}
	if e.Kind == KindTransfer && e.State == StateDebited {
		r, err := s.applyStep(ctx, e.To, e.Account, e.Amount, stepName(e, "c"), true, e.Amount, false, nil)
		if err != nil {
			return nil, err
		}
		if r == stepApplied {
			// A receiver deleted meanwhile (its check passed before the
			// tombstone): the credit went to a wallet that is going or
			// gone. The credit is written before the tombstone is read,
			// and a deletion writes its tombstone before it removes the
			// wallet, so one of the two sees the other: the sender is
			// refunded and the receiver's versions are removed again.
			if gone, err := s.deletedUser(ctx, e.To); err != nil {
				return nil, err
			} else if gone {
				if err := deleteWallet(ctx, s, e.To); err != nil {
					return nil, err
				}
				r = stepNoWallet
			}
		}
		next := StateCompleted
		if r == stepNoWallet {
			// The receiver is gone: give the money back (as a smaller
			// expense). If the sender is gone too, nobody is left to hold it.
			if _, err := s.applyStep(ctx, e.UserID, e.Account, e.Amount, stepName(e, "r"), false, -e.Amount, false, nil); err != nil {
				return nil, err
			}
			if err := fault("refunded"); err != nil {
				return nil, err
			}
			next = StateRefunded
		} else if err := fault("credited"); err != nil {
			return nil, err
		}
		if err := s.setState(ctx, e, next); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// setState records e's progress. States only move forward, and every actor
// moves them the same way (the steps decide), so a lost race costs nothing.
func (s *Store) setState(ctx context.Context, e *LedgerEntry, next string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	if err := retryTransient(ctx, func() error {
		_, err := s.col(ColLedger).UpdateOne(ctx,
			bson.D{{Key: "_id", Value: e.ID}, {Key: "nonce", Value: e.Nonce}, {Key: "state", Value: bson.D{{Key: "$in", Value: unfinished}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: next}, {Key: "updated_at", Value: now}}}})
		return err
	}); err != nil {
		return classify(err)
	}
	e.State, e.Updated = next, now
	return nil
}

// dropEntry ends a pending entry whose first step was refused (recorded as
// void, so it can never be applied later) and returns cause. The entry is
// kept, state `refused`, for the record, but gives its idempotency key back
// (renamed "refused:<nonce>:<key>") so the same key may be tried again, and
// it is never listed. It is not deleted: on FerretDB a delete is a query
// followed by a delete by _id, and a racing delete could take a newer entry
// that got the same id from the (equally unisolated) id counter.
func (s *Store) dropEntry(ctx context.Context, e *LedgerEntry, cause error) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := retryTransient(ctx, func() error {
		_, err := s.col(ColLedger).UpdateOne(ctx,
			bson.D{{Key: "_id", Value: e.ID}, {Key: "nonce", Value: e.Nonce}, {Key: "state", Value: StatePending}},
			bson.D{{Key: "$set", Value: bson.D{
				{Key: "state", Value: StateRefused}, {Key: "updated_at", Value: s.Now()},
				{Key: "idempotency_key", Value: "refused:" + e.Nonce + ":" + e.Key},
			}}})
		return err
	}); err != nil {
		return classify(err)
	}
	return cause
}

// LedgerQuery is one page of ledger entries, newest first.
type LedgerQuery struct {
	UserID    int64   // entries touching this user; 0: all
	Account   Account // "": all accounts
	Direction string  // "income" or "expenses" as seen by UserID; "": both
	BeforeID  int64   // only ids below this (cursor); 0: from the newest
	Limit     int64
	Offset    int64
	Count     bool
}

// ListLedger runs q.
func (s *Store) ListLedger(ctx context.Context, q LedgerQuery) ([]*LedgerEntry, *int64, error) {
	if q.Limit <= 0 || q.Offset < 0 {
		return nil, nil, fmt.Errorf("store: bad page limit=%d offset=%d", q.Limit, q.Offset)
	}
	filter := bson.D{}
	if q.UserID != 0 {
		filter = append(filter, bson.E{Key: "parties", Value: q.UserID})
	}
	filter = append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$ne", Value: StateRefused}}})
	if q.Account != "" {
		filter = append(filter, bson.E{Key: "account", Value: q.Account})
	}
	if q.BeforeID > 0 {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: q.BeforeID}}})
	}
	if q.UserID != 0 && q.Direction != "" {
		sign, side := "$gt", "to"
		if q.Direction == "expenses" {
			sign, side = "$lt", "user_id"
		}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "kind", Value: KindAdjust}, {Key: "amount", Value: bson.D{{Key: sign, Value: int64(0)}}}},
			bson.D{{Key: "kind", Value: KindTransfer}, {Key: side, Value: q.UserID}},
		}})
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	cur, err := s.col(ColLedger).Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetSkip(q.Offset).SetLimit(q.Limit))
	if err != nil {
		return nil, nil, classify(err)
	}
	var out []*LedgerEntry
	if err := decodeAll(ctx, cur, &out); err != nil {
		return nil, nil, classify(err)
	}
	for _, e := range out {
		e.normalize()
	}
	var total *int64
	if q.Count {
		n, err := s.col(ColLedger).CountDocuments(ctx, filter)
		if err != nil {
			return nil, nil, classify(err)
		}
		total = &n
	}
	return out, total, nil
}

// deleteWallet removes a deleted user's wallet versions. Ledger entries stay
// as history; an unfinished transfer to the user is refunded by recovery.
func deleteWallet(ctx context.Context, s *Store, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColWallets).DeleteMany(ctx, bson.D{{Key: "user_id", Value: user}})
	return classify(err)
}

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
