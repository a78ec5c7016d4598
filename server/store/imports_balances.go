package store

// Opening balances of an import: ledger adjusts with the idempotency key
// "import:<source>:<account>", at most one per user and account, ever,
// with the ledger's own invariants.
//
// A user this batch created has no wallet and no entries yet, so its
// adjusts are written in bulk, in the order a single Adjust writes them:
//  1. every wallet's version 0 (unordered inserts), so that no
//     entry is ever seen without its wallet: a concurrent replay that
//     finds a pending entry processes it, and an entry of a user without
//     a wallet is refused and removed (answered 404 before this step came
//     first: 30 parallel replays of one batch);
//  2. every entry, pending (unordered inserts);
//  3. every further wallet version, one per entry, each recording its step
//     (one ordered InsertMany: it stops at the first refused version, so
//     each user's versions that went in are a prefix of its chain);
//  4. every entry completed.
//
// Whatever a step refuses, or a crash leaves, is finished by the ledger's
// own paths: an entry that did not go in by Adjust (a replay finds it by
// key), an entry whose versions did not all go in by process (which finds
// its step recorded or appends it), and a pending entry left behind by
// recovery once its lease ends. Other users (updated, or skipped as this
// import's own) go through Adjust one by one.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// OpeningBalanceKey is the idempotency key of an imported opening balance
// (the ledger prefixes it with "adjust:").
func OpeningBalanceKey(source string, a Account) string {
	return openingKeyPrefix + source + ":" + string(a)
}

// openingKeyPrefix starts every OpeningBalanceKey (ReservedAdjustKey).
const openingKeyPrefix = "import:"

const openingTitle = "opening balance (import)"

// balanceAccounts is the order in which a record's balances are booked.
var balanceAccounts = []Account{AccountWallet, AccountNewWallet, AccountCurrency}

// openingUser is one user's opening entries in the bulk path.
type openingUser struct {
	at      int // index in the batch
	entries []*LedgerEntry
	slow    bool // an entry was refused: finish by the ledger's paths
	applied bool // every wallet version went in
}

// importAllBalances books the batch's opening balances; a per-record
// problem turns its result into an error.
func (s *Store) importAllBalances(ctx context.Context, users []ImportUser, results []ImportResult, opt ImportOptions) error {
	var bulk []*openingUser
	var single []int
	for i := range users {
		if !finishes(&users[i], results[i], opt) || !hasBalances(&users[i]) {
			continue
		}
		if results[i].Status == ImportCreated {
			bulk = append(bulk, &openingUser{at: i})
		} else {
			single = append(single, i)
		}
	}
	if err := s.bulkOpeningBalances(ctx, users, results, bulk); err != nil {
		return err
	}
	return s.forEach(ctx, len(single), func(k int) error {
		i := single[k]
		msg, err := s.importBalances(ctx, &users[i], results[i].UserID)
		if msg != "" {
			results[i] = ImportResult{Status: ImportError, UserID: results[i].UserID, Error: msg}
		}
		return err
	})
}

func hasBalances(u *ImportUser) bool {
	for _, a := range balanceAccounts {
		if u.Balances[a] != 0 {
			return true
		}
	}
	return false
}

// openingEntry is the entry Adjust would write for one opening balance.
func openingEntry(user int64, a Account, amount int64, source string) *LedgerEntry {
	return &LedgerEntry{
		Key: ledgerKeyAdjust + OpeningBalanceKey(source, a), Kind: KindAdjust, Account: a, UserID: user,
		Parties: []int64{user}, Amount: amount, Title: openingTitle,
		Fingerprint: fmt.Sprintf("adjust|%d|%s|%d", user, a, amount),
	}
}

func (s *Store) bulkOpeningBalances(ctx context.Context, users []ImportUser, results []ImportResult, bulk []*openingUser) error {
	if len(bulk) == 0 {
		return nil
	}
	var all []*LedgerEntry
	owner := map[*LedgerEntry]*openingUser{}
	for _, o := range bulk {
		u := &users[o.at]
		for _, a := range balanceAccounts {
			if amount := u.Balances[a]; amount != 0 {
				e := openingEntry(results[o.at].UserID, a, amount, u.Source())
				o.entries = append(o.entries, e)
				owner[e] = o
				all = append(all, e)
			}
		}
	}
	if err := s.insertEmptyWallets(ctx, bulk); err != nil {
		return err
	}
	if err := s.insertPendingEntries(ctx, all, owner); err != nil {
		return err
	}
	if err := s.insertOpeningWallets(ctx, bulk); err != nil {
		return err
	}
	if err := s.fault("adjusted"); err != nil {
		return err
	}
	return s.forEach(ctx, len(bulk), func(k int) error {
		o := bulk[k]
		msg, err := s.finishOpening(ctx, &users[o.at], o)
		if msg != "" {
			results[o.at] = ImportResult{Status: ImportError, UserID: results[o.at].UserID, Error: msg}
		}
		return err
	})
}

// insertPendingEntries gives each entry a ledger id and inserts them all;
// the owners of refused ones (the key is taken: a replay; or the id: the
// counter repeated) are marked slow, and their refused entries dropped.
func (s *Store) insertPendingEntries(ctx context.Context, all []*LedgerEntry, owner map[*LedgerEntry]*openingUser) error {
	err := s.forEach(ctx, len(all), func(k int) error {
		id, err := s.nextUntriedID(ctx, ColLedger)
		all[k].ID = id
		return err
	})
	if err != nil {
		return err
	}
	now := s.Now()
	docs := make([]any, len(all))
	for k, e := range all {
		e.State, e.Nonce = StatePending, randomToken()
		e.LeaseOwner, e.LeaseUntil = randomToken(), now.Add(s.ledgerLease)
		e.Created, e.Updated = now, now
		docs[k] = e
	}
	refused, err := s.insertUnordered(ctx, ColLedger, docs)
	if err != nil {
		return err
	}
	for k, e := range all {
		if refused[k] {
			o := owner[e]
			o.slow = true
			e.ID = 0 // not written: Adjust books it
		}
	}
	return nil
}

// insertEmptyWallets writes version 0 of every bulk user's wallet; one a
// replay of this batch wrote already is left as it is.
func (s *Store) insertEmptyWallets(ctx context.Context, bulk []*openingUser) error {
	now := s.Now()
	docs := make([]any, 0, len(bulk))
	for _, o := range bulk {
		user := o.entries[0].UserID
		docs = append(docs, Wallet{ID: walletVersionID(user, 0), UserID: user, Created: now, Updated: now})
	}
	return s.insertIgnoringDuplicates(ctx, ColWallets, docs)
}

// insertOpeningWallets writes the wallets of the users whose entries all
// went in: version 0 and one version per entry, in one ordered insert.
func (s *Store) insertOpeningWallets(ctx context.Context, bulk []*openingUser) error {
	now := s.Now()
	var docs []any
	var ends []int // ends[k]: docs index after user fast[k]'s versions
	var fast []*openingUser
	for _, o := range bulk {
		if o.slow {
			continue
		}
		w := Wallet{ID: walletVersionID(o.entries[0].UserID, 0), UserID: o.entries[0].UserID, Created: now, Updated: now}
		for _, e := range o.entries {
			w.Seq++
			w.ID, w.Step = walletVersionID(e.UserID, w.Seq), stepName(e, "a")
			w.add(e.Account, e.Amount)
			w.Totals.add(e.Account, true, e.Amount)
			docs = append(docs, w)
		}
		fast = append(fast, o)
		ends = append(ends, len(docs))
	}
	if len(docs) == 0 {
		return nil
	}
	in := len(docs) // versions that went in: a prefix
	err := retryTransient(ctx, func() error {
		octx, cancel := s.bulkOpContext(ctx)
		defer cancel()
		_, err := s.col(ColWallets).InsertMany(octx, docs, options.InsertMany().SetOrdered(true))
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 && bwe.WriteConcernError == nil {
			in = bwe.WriteErrors[0].Index
			return nil
		}
		return err
	})
	if err != nil && !errors.Is(classify(err), ErrConflict) {
		return classify(err)
	}
	if err != nil {
		in = 0 // unknown how far it got: process finds out per entry
	}
	for k, o := range fast {
		o.applied = ends[k] <= in
	}
	return nil
}

// finishOpening completes one user's opening entries, by the ledger's own
// paths where the bulk writes did not get through.
func (s *Store) finishOpening(ctx context.Context, u *ImportUser, o *openingUser) (string, error) {
	var problems []string
	for _, e := range o.entries {
		var err error
		switch {
		case e.ID == 0:
			_, _, err = s.Adjust(ctx, AdjustRequest{UserID: e.UserID, Account: e.Account, Amount: e.Amount,
				Title: openingTitle, Key: OpeningBalanceKey(u.Source(), e.Account), internal: true})
		case o.applied:
			err = s.setState(ctx, e, StateCompleted)
		default:
			_, err = s.process(ctx, e, nil)
		}
		msg, err := balanceProblem(e.Account, err)
		if err != nil {
			return "", err
		}
		if msg != "" {
			problems = append(problems, msg)
		}
	}
	return strings.Join(problems, "; "), nil
}

// balanceProblem tells a per-record problem (msg) from a store error.
func balanceProblem(a Account, err error) (string, error) {
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, ErrIdempotencyMismatch):
		return fmt.Sprintf("%s: a different opening balance was already imported for this user", a), nil
	case errors.Is(err, ErrBalanceLimit), errors.Is(err, ErrInsufficientFunds):
		return fmt.Sprintf("%s: %v", a, err), nil
	}
	return "", err
}

// importBalances books the record's opening balances as adjusts, each once
// per source and account. msg is a per-record problem.
func (s *Store) importBalances(ctx context.Context, u *ImportUser, user int64) (msg string, err error) {
	var problems []string
	for _, a := range balanceAccounts {
		amount := u.Balances[a]
		if amount == 0 {
			continue
		}
		_, _, err := s.Adjust(ctx, AdjustRequest{UserID: user, Account: a, Amount: amount,
			Title: openingTitle, Key: OpeningBalanceKey(u.Source(), a), internal: true})
		msg, err := balanceProblem(a, err)
		if err != nil {
			return "", err
		}
		if msg != "" {
			problems = append(problems, msg)
		}
	}
	return strings.Join(problems, "; "), nil
}
