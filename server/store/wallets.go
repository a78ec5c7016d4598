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
// its lease expired: a retry with the same key, RecoverLedger (at a
// server's start, then once a minute per replica: server.LedgerSweepEvery) and
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
	"strconv"
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

// DefaultLedgerLease is how long one actor works on an entry before others
// may take over (WithLedgerLease); processBudget is how long an actor tries.
const (
	DefaultLedgerLease = 60 * time.Second
	processBudget      = 30 * time.Second
	// DefaultSettleWait is how long a retry waits for a live holder to
	// finish before answering ErrInProgress (WithSettleWait).
	DefaultSettleWait = 5 * time.Second
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
