package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/api/v1alpha1"
)

// Submitting movements to the ledger (see the design at the top of wallets.go):
// admin adjustments and transfers, each written once under its idempotency
// key, then processed (wallets_steps.go).

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
	// The event is written ahead under the entry's key; a replay, a refusal
	// or a failed check drops it, and a crash leaves it to recovery, which
	// reads the entry the key names (events_recover.go).
	ev, err := s.beginEvent(ctx, v1alpha1.EventWalletTransaction, e.UserID, e.Key, nil)
	if err != nil {
		return nil, false, err
	}
	out, created, err := s.submitEntry(ctx, e, prepare)
	switch {
	case err == nil && created && out.State == StateCompleted:
		ev.seal(ctx, 0, ledgerEventData(out))
	case err == nil || ledgerRefusal(err):
		ev.drop(ctx) // a replay (announced by its first call), or refused
	}
	return out, created, err
}

// ledgerRefusal reports an error after which no money moved, nor will.
// After any other the entry may still finish (recovery), so its event
// stays open for the outbox recovery to judge.
func ledgerRefusal(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrBalanceLimit) ||
		errors.Is(err, ErrConflict) || errors.Is(err, ErrReservedKey)
}

func (s *Store) submitEntry(ctx context.Context, e *LedgerEntry, prepare func(context.Context) (*Wallet, error)) (*LedgerEntry, bool, error) {
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
		n.LeaseOwner, n.LeaseUntil = randomToken(), now.Add(s.ledgerLease)
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
