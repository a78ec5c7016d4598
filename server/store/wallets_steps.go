package store

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Processing a ledger entry step by step (see the design at the top of wallets.go):
// settling, claiming and recovering entries, one wallet step, and the retries
// of transient store errors.

// settle returns a final entry: finished by this call when its lease has run
// out, or by its live holder while this call waits a little.
func (s *Store) settle(ctx context.Context, e *LedgerEntry) (*LedgerEntry, error) {
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(s.settleWait)
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
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease_owner", Value: randomToken()}, {Key: "lease_until", Value: now.Add(s.ledgerLease)}}}},
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
		if err := s.fault("adjusted"); err != nil {
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
		if err := s.fault("debited"); err != nil {
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
			if err := s.fault("refunded"); err != nil {
				return nil, err
			}
			next = StateRefunded
		} else if err := s.fault("credited"); err != nil {
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
