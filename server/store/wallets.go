package store

// Wallets and the ledger, correct without multi-document transactions.
//
// # Documents
//
// A user's balances live in one `wallets` document (_id = user id):
// `wallet`, `new_wallet` and `currency` (integers), income/expense totals per
// account, and `applied`: the markers of ledger steps whose effect is already
// in the balances. Every movement of money is one `ledger` entry (_id =
// sequential id) with a unique `idempotency_key`, a `state`, and a lease
// (`lease_owner`, `lease_until`) saying who may drive it forward.
//
// # One step = one atomic single-document update
//
// Each balance change is a single conditional update of one wallet:
//
//	filter {_id: user, applied: {$ne: marker}, <account>: {$gte: -delta}}
//	update {$inc: {<account>: delta, ...totals}, $push: {applied: marker}}
//
// MongoDB applies a single-document update atomically, so the balance can
// never go below zero (the filter refuses), and a step can never be applied
// twice (its marker is pushed in the same write that moves the money; a
// repeat does not match). After a crash, "did this step happen?" is answered
// by looking for its marker in the wallet.
//
// # States
//
//	adjust   (management credit/debit): pending -> completed
//	transfer (user to user):            pending -> debited -> completed
//	                                                       -> refunded
//
// A transfer first debits the sender (marker "<id>:d"), records `debited`,
// then credits the receiver ("<id>:c") and records `completed`. If the
// receiver's wallet is gone by then (user deleted), the sender is credited
// back ("<id>:r") and the entry ends `refunded`. A debit the balance cannot
// cover, or an adjust for a user without a wallet, changes nothing: the
// pending entry is deleted and the caller gets ErrInsufficientFunds (the
// same key may be tried again later). Finally the markers are pulled from
// the wallets and the entry is marked `clean`.
//
// # Exactly once per key, and recovery
//
// The unique index on idempotency_key makes the entry the single claim on a
// key: a retry finds the existing entry and returns it, driving it to its end
// first if needed. Only the lease holder works on an entry. A request holds
// the lease from the insert; it does all its steps within processBudget,
// well inside the lease, and every store operation is cut at the store's op
// timeout, so no write of a dead or stalled holder can land after its lease
// has run out. Whoever finds an unfinished entry with an expired lease (a
// retry with the same key, RecoverLedger at startup, or GetWallet lazily
// before showing a balance) claims the lease with one conditional update and
// continues from the recorded state, using the markers to skip steps that had
// already happened: a transfer stopped after its debit is completed, never
// debited twice, never lost.
//
// The invariant tests check: per user and account, balance = sum of
// completed adjusts + completed incoming transfers - completed outgoing
// transfers, and no balance is ever negative.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
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
)

// Wallet errors.
var (
	ErrInsufficientFunds   = errors.New("balance is too low")
	ErrBalanceLimit        = fmt.Errorf("balance would exceed %d", MaxBalance)
	ErrIdempotencyMismatch = errors.New("idempotency key was already used for a different request")
	ErrInProgress          = errors.New("a request with this idempotency key is still being processed; retry shortly")
	errLeaseLost           = errors.New("ledger lease lost")
)

// LedgerLease is how long a holder may work on an entry before others may
// take over; processBudget is how long a holder actually tries.
var (
	LedgerLease   = 60 * time.Second
	processBudget = 30 * time.Second
)

// Wallet is a user's balances.
type Wallet struct {
	UserID    int64     `bson:"_id"`
	Wallet    int64     `bson:"wallet"`
	NewWallet int64     `bson:"new_wallet"`
	Currency  int64     `bson:"currency"`
	Totals    Totals    `bson:"totals"`
	Applied   []string  `bson:"applied"`
	Created   time.Time `bson:"created_at"`
	Updated   time.Time `bson:"updated_at"`
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

// LedgerEntry is one movement of money.
type LedgerEntry struct {
	ID          int64     `bson:"_id"`
	Key         string    `bson:"idempotency_key"`
	Fingerprint string    `bson:"fingerprint"`
	Kind        string    `bson:"kind"`
	Account     Account   `bson:"account"`
	UserID      int64     `bson:"user_id"` // the adjusted user, or the sender
	To          int64     `bson:"to,omitempty"`
	Parties     []int64   `bson:"parties"`
	Amount      int64     `bson:"amount"` // adjust: signed; transfer: > 0
	Title       string    `bson:"title"`
	State       string    `bson:"state"`
	Clean       bool      `bson:"clean"`
	LeaseOwner  string    `bson:"lease_owner"`
	LeaseUntil  time.Time `bson:"lease_until"`
	Created     time.Time `bson:"created_at"`
	Updated     time.Time `bson:"updated_at"`
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

func init() {
	RegisterIndexes(
		IndexSpec{Collection: ColLedger, Name: "idempotency_key_unique", Keys: bson.D{{Key: "idempotency_key", Value: 1}}, Unique: true, Field: "idempotency_key"},
		IndexSpec{Collection: ColLedger, Name: "parties_account_id", Keys: bson.D{{Key: "parties", Value: 1}, {Key: "account", Value: 1}, {Key: "_id", Value: -1}}},
		IndexSpec{Collection: ColLedger, Name: "unclean_parties", Keys: bson.D{{Key: "clean", Value: 1}, {Key: "parties", Value: 1}, {Key: "lease_until", Value: 1}}},
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

// EnsureWallet creates the user's wallet with zero balances if missing.
func (s *Store) EnsureWallet(ctx context.Context, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	_, err := s.col(ColWallets).UpdateOne(ctx, bson.D{{Key: "_id", Value: user}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{
			{Key: "wallet", Value: int64(0)}, {Key: "new_wallet", Value: int64(0)}, {Key: "currency", Value: int64(0)},
			{Key: "totals", Value: Totals{}}, {Key: "applied", Value: bson.A{}},
			{Key: "created_at", Value: now}, {Key: "updated_at", Value: now},
		}}}, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return nil // created concurrently
	}
	return classify(err)
}

// GetWallet is the user's wallet after finishing any of their stalled ledger
// entries; a user who never had money gets zero balances (Created zero).
func (s *Store) GetWallet(ctx context.Context, user int64) (*Wallet, error) {
	if _, err := s.RecoverLedger(ctx, user); err != nil {
		return nil, err
	}
	return s.readWallet(ctx, user)
}

func (s *Store) readWallet(ctx context.Context, user int64) (*Wallet, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var w Wallet
	err := s.col(ColWallets).FindOne(ctx, bson.D{{Key: "_id", Value: user}}).Decode(&w)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return &Wallet{UserID: user, Applied: []string{}}, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	w.Created, w.Updated = w.Created.UTC(), w.Updated.UTC()
	return &w, nil
}

// AdjustRequest credits (Amount > 0) or debits (Amount < 0) one account.
type AdjustRequest struct {
	UserID  int64
	Account Account
	Amount  int64
	Title   string
	Key     string // idempotency key, unique per tenant; empty: a fresh one
}

// Adjust applies a management credit or debit once per key. It returns the
// entry and whether this call created it (false: a replay of the key).
func (s *Store) Adjust(ctx context.Context, r AdjustRequest) (*LedgerEntry, bool, error) {
	if r.Amount == 0 || r.Amount > MaxAmount || r.Amount < -MaxAmount {
		return nil, false, fmt.Errorf("store: adjust amount %d out of range", r.Amount)
	}
	if _, ok := ParseAccount(string(r.Account)); !ok {
		return nil, false, fmt.Errorf("store: unknown account %q", r.Account)
	}
	key := "adjust:" + r.Key
	if r.Key == "" {
		key = "adjust:auto:" + randomToken()
	}
	e := &LedgerEntry{
		Key: key, Kind: KindAdjust, Account: r.Account, UserID: r.UserID, Parties: []int64{r.UserID},
		Amount: r.Amount, Title: r.Title,
		Fingerprint: fmt.Sprintf("adjust|%d|%s|%d", r.UserID, r.Account, r.Amount),
	}
	return s.submit(ctx, e, func(ctx context.Context) error {
		if _, err := s.GetProfile(ctx, r.UserID); err != nil {
			return err
		}
		return s.EnsureWallet(ctx, r.UserID)
	})
}

// TransferRequest moves Amount (> 0) of Account from one user to another.
type TransferRequest struct {
	From, To int64
	Account  Account
	Amount   int64
	Title    string
	Key      string // idempotency key, scoped to the sender; empty: a fresh one
}

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
	key := "transfer:" + strconv.FormatInt(r.From, 10) + ":" + r.Key
	if r.Key == "" {
		key = "transfer:auto:" + randomToken()
	}
	e := &LedgerEntry{
		Key: key, Kind: KindTransfer, Account: r.Account, UserID: r.From, To: r.To,
		Parties: []int64{r.From, r.To}, Amount: r.Amount, Title: r.Title,
		Fingerprint: fmt.Sprintf("transfer|%d|%d|%s|%d", r.From, r.To, r.Account, r.Amount),
	}
	return s.submit(ctx, e, func(ctx context.Context) error {
		if _, err := s.GetProfile(ctx, r.To); err != nil {
			return err
		}
		if err := s.EnsureWallet(ctx, r.From); err != nil {
			return err
		}
		return s.EnsureWallet(ctx, r.To)
	})
}

// submit claims e's key and drives it, or settles the entry already holding
// the key.
func (s *Store) submit(ctx context.Context, e *LedgerEntry, prepare func(context.Context) error) (*LedgerEntry, bool, error) {
	for attempt := 0; attempt < 5; attempt++ {
		existing, err := s.entryByKey(ctx, e.Key)
		switch {
		case err == nil:
			if existing.Fingerprint != e.Fingerprint {
				return nil, false, ErrIdempotencyMismatch
			}
			out, err := s.settle(ctx, existing)
			if errors.Is(err, ErrNotFound) {
				continue // refused and removed meanwhile: try afresh
			}
			return out, false, err
		case !errors.Is(err, ErrNotFound):
			return nil, false, err
		}
		if attempt == 0 {
			if err := prepare(ctx); err != nil {
				return nil, false, err
			}
		}
		id, err := s.NextID(ctx, ColLedger)
		if err != nil {
			return nil, false, err
		}
		now := s.Now()
		owner := randomToken()
		n := *e
		n.ID, n.State, n.Clean = id, StatePending, false
		n.LeaseOwner, n.LeaseUntil = owner, now.Add(LedgerLease)
		n.Created, n.Updated = now, now
		if err := s.insertEntry(ctx, &n); err != nil {
			if errors.Is(err, ErrConflict) {
				continue // someone else claimed the key first
			}
			return nil, false, err
		}
		out, err := s.process(ctx, &n, owner)
		return out, true, err
	}
	return nil, false, ErrInProgress
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
	if err := s.col(ColLedger).FindOne(ctx, filter).Decode(&e); err != nil {
		return nil, classify(err)
	}
	e.normalize()
	return &e, nil
}

func (e *LedgerEntry) normalize() {
	e.Created, e.Updated, e.LeaseUntil = e.Created.UTC(), e.Updated.UTC(), e.LeaseUntil.UTC()
}

// settle returns a final entry, finishing it when its holder has gone and
// waiting a little while a live holder is at work.
func (s *Store) settle(ctx context.Context, e *LedgerEntry) (*LedgerEntry, error) {
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	for {
		if e.Final() {
			if !e.Clean {
				s.cleanMarkers(ctx, e)
			}
			return e, nil
		}
		if !e.LeaseUntil.After(s.Now()) {
			claimed, owner, err := s.claim(ctx, e.ID)
			if err != nil {
				return nil, err
			}
			if claimed != nil {
				return s.process(ctx, claimed, owner)
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

// claim takes the lease of an unfinished entry whose lease has run out.
func (s *Store) claim(ctx context.Context, id int64) (*LedgerEntry, string, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	owner := randomToken()
	var e LedgerEntry
	err := s.col(ColLedger).FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "clean", Value: false}, {Key: "lease_until", Value: bson.D{{Key: "$lte", Value: now}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease_owner", Value: owner}, {Key: "lease_until", Value: now.Add(LedgerLease)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", classify(err)
	}
	e.normalize()
	return &e, owner, nil
}

// RecoverLedger finishes every unfinished entry of user (0: of everybody)
// whose lease has run out, and returns how many it finished. Run at startup
// and before showing a balance.
func (s *Store) RecoverLedger(ctx context.Context, user int64) (int, error) {
	filter := bson.D{{Key: "clean", Value: false}}
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
	err = cur.All(qctx, &ids)
	cancel()
	if err != nil {
		return 0, classify(err)
	}
	n := 0
	for _, d := range ids {
		e, owner, err := s.claim(ctx, d.ID)
		if err != nil {
			return n, err
		}
		if e == nil {
			continue // someone else got there first
		}
		if _, err := s.process(ctx, e, owner); err != nil &&
			!errors.Is(err, ErrInsufficientFunds) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrBalanceLimit) {
			return n, err
		}
		n++
	}
	return n, nil
}

// stepResult is what one conditional wallet write found.
type stepResult int

const (
	stepApplied      stepResult = iota // this call or an earlier one moved the money
	stepInsufficient                   // a debit the balance cannot cover
	stepOverLimit                      // a credit past MaxBalance
	stepNoWallet                       // the wallet does not exist
)

func marker(id int64, step string) string { return strconv.FormatInt(id, 10) + ":" + step }

// applyStep moves delta on user's account once for marker; total names the
// income or expense total that moves by totalDelta alongside.
func (s *Store) applyStep(ctx context.Context, user int64, acct Account, delta int64, marker, total string, totalDelta int64, limit bool) (stepResult, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	filter := bson.D{{Key: "_id", Value: user}, {Key: "applied", Value: bson.D{{Key: "$ne", Value: marker}}}}
	if delta < 0 {
		filter = append(filter, bson.E{Key: string(acct), Value: bson.D{{Key: "$gte", Value: -delta}}})
	} else if limit {
		filter = append(filter, bson.E{Key: string(acct), Value: bson.D{{Key: "$lte", Value: MaxBalance - delta}}})
	}
	res, err := s.col(ColWallets).UpdateOne(ctx, filter, bson.D{
		{Key: "$inc", Value: bson.D{{Key: string(acct), Value: delta}, {Key: "totals." + total, Value: totalDelta}}},
		{Key: "$push", Value: bson.D{{Key: "applied", Value: marker}}},
		{Key: "$set", Value: bson.D{{Key: "updated_at", Value: s.Now()}}},
	})
	if err != nil {
		return 0, classify(err)
	}
	if res.MatchedCount == 1 {
		return stepApplied, nil
	}
	// Not matched: find out why.
	var w Wallet
	err = s.col(ColWallets).FindOne(ctx, bson.D{{Key: "_id", Value: user}}).Decode(&w)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return stepNoWallet, nil
	}
	if err != nil {
		return 0, classify(err)
	}
	for _, m := range w.Applied {
		if m == marker {
			return stepApplied, nil
		}
	}
	if delta < 0 {
		return stepInsufficient, nil
	}
	return stepOverLimit, nil
}

func totalsFor(acct Account, income bool) string {
	if income {
		return string(acct) + "_income"
	}
	return string(acct) + "_expenses"
}

// process drives an entry whose lease owner holds to a final state.
func (s *Store) process(parent context.Context, e *LedgerEntry, owner string) (*LedgerEntry, error) {
	ctx, cancel := context.WithTimeout(parent, processBudget)
	defer cancel()
	if e.Kind == KindAdjust && e.State == StatePending {
		total, totalDelta := totalsFor(e.Account, e.Amount > 0), e.Amount
		if e.Amount < 0 {
			totalDelta = -e.Amount
		}
		r, err := s.applyStep(ctx, e.UserID, e.Account, e.Amount, marker(e.ID, "a"), total, totalDelta, true)
		if err != nil {
			return nil, err
		}
		switch r {
		case stepInsufficient:
			return nil, s.dropEntry(ctx, e, owner, ErrInsufficientFunds)
		case stepOverLimit:
			return nil, s.dropEntry(ctx, e, owner, ErrBalanceLimit)
		case stepNoWallet:
			return nil, s.dropEntry(ctx, e, owner, ErrNotFound)
		}
		if err := fault("adjusted"); err != nil {
			return nil, err
		}
		if err := s.setState(ctx, e, owner, StateCompleted); err != nil {
			return nil, err
		}
	}
	if e.Kind == KindTransfer && e.State == StatePending {
		r, err := s.applyStep(ctx, e.UserID, e.Account, -e.Amount, marker(e.ID, "d"), totalsFor(e.Account, false), e.Amount, false)
		if err != nil {
			return nil, err
		}
		switch r {
		case stepInsufficient:
			return nil, s.dropEntry(ctx, e, owner, ErrInsufficientFunds)
		case stepNoWallet:
			return nil, s.dropEntry(ctx, e, owner, ErrNotFound)
		}
		if err := fault("debited"); err != nil {
			return nil, err
		}
		if err := s.setState(ctx, e, owner, StateDebited); err != nil {
			return nil, err
		}
	}
	if e.Kind == KindTransfer && e.State == StateDebited {
		r, err := s.applyStep(ctx, e.To, e.Account, e.Amount, marker(e.ID, "c"), totalsFor(e.Account, true), e.Amount, false)
		if err != nil {
			return nil, err
		}
		next := StateCompleted
		if r == stepNoWallet {
			// The receiver is gone: give the money back. If the sender is
			// gone too, there is nobody left to hold it.
			if _, err := s.applyStep(ctx, e.UserID, e.Account, e.Amount, marker(e.ID, "r"), totalsFor(e.Account, false), -e.Amount, false); err != nil {
				return nil, err
			}
			if err := fault("refunded"); err != nil {
				return nil, err
			}
			next = StateRefunded
		} else if err := fault("credited"); err != nil {
			return nil, err
		}
		if err := s.setState(ctx, e, owner, next); err != nil {
			return nil, err
		}
	}
	if e.Final() && !e.Clean {
		s.cleanMarkers(ctx, e)
	}
	return e, nil
}

// setState moves e to next if owner still holds its lease.
func (s *Store) setState(ctx context.Context, e *LedgerEntry, owner, next string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.Now()
	res, err := s.col(ColLedger).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: e.ID}, {Key: "state", Value: e.State}, {Key: "lease_owner", Value: owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: next}, {Key: "updated_at", Value: now}}}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return errLeaseLost
	}
	e.State, e.Updated = next, now
	return nil
}

// dropEntry deletes a pending entry whose first step was refused (nothing
// moved), returning cause.
func (s *Store) dropEntry(ctx context.Context, e *LedgerEntry, owner string, cause error) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColLedger).DeleteOne(ctx, bson.D{{Key: "_id", Value: e.ID}, {Key: "state", Value: StatePending}, {Key: "lease_owner", Value: owner}})
	if err != nil {
		return classify(err)
	}
	return cause
}

// cleanMarkers pulls a final entry's markers from the wallets and marks it
// clean. Best effort: a failure leaves it for the next recovery.
func (s *Store) cleanMarkers(ctx context.Context, e *LedgerEntry) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	markers := bson.A{marker(e.ID, "a"), marker(e.ID, "d"), marker(e.ID, "c"), marker(e.ID, "r")}
	if _, err := s.col(ColWallets).UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: e.Parties}}}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "applied", Value: bson.D{{Key: "$in", Value: markers}}}}}}); err != nil {
		s.log.Warn("ledger: pulling markers failed; recovery retries", "entry", e.ID, "error", err)
		return
	}
	if _, err := s.col(ColLedger).UpdateOne(ctx, bson.D{{Key: "_id", Value: e.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "clean", Value: true}}}}); err != nil {
		s.log.Warn("ledger: marking entry clean failed; recovery retries", "entry", e.ID, "error", err)
		return
	}
	e.Clean = true
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
	if err := cur.All(ctx, &out); err != nil {
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

// deleteWallet removes a deleted user's wallet. Ledger entries stay as
// history; an unfinished transfer to the user is refunded by recovery.
func deleteWallet(ctx context.Context, s *Store, user int64) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.col(ColWallets).DeleteOne(ctx, bson.D{{Key: "_id", Value: user}})
	return classify(err)
}

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
