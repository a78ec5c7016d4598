package apibench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/server/store"
)

// creditEndpoint is the management API's idempotent wallet credit, each
// request with a fresh idempotency key. Its ceiling replays the store's
// adjust (server/store/wallets.go) through the driver, one operation after
// another as the store issues them.
func (t *target) creditEndpoint() endpoint {
	return endpoint{
		name:    report.EndpointCredit,
		request: `POST /userve/v1/wallet/transactions/ {"user_id","account":"wallet","amount","title","idempotency_key": unique}`,
		driverQuery: "the store's adjust, 6 operations: findOne profile (_id only), findOne latest wallet " +
			"(plus, for a user without a wallet yet, insert wallet v0, findOne wallets by step and findOne latest wallet again), " +
			"findOneAndUpdate counters, insert ledger entry, insert wallet version, updateOne ledger state",
		server: func(ctx context.Context, _ int, seq int64) error {
			return t.admin(ctx, http.MethodPost, "/userve/v1/wallet/transactions/", t.creditBody(seq), http.StatusCreated)
		},
		driver: t.creditDirect,
	}
}

// directLedgerIDs are the ledger ids the ceiling has tried, as the store
// keeps them: FerretDB's counter repeats values under concurrency.
var directLedgerIDs = struct {
	sync.Mutex
	tried map[int64]bool
	max   int64
}{tried: map[int64]bool{}}

func pickDirectLedgerID(counter int64) int64 {
	directLedgerIDs.Lock()
	defer directLedgerIDs.Unlock()
	if directLedgerIDs.tried[counter] {
		counter = directLedgerIDs.max + 1
	}
	directLedgerIDs.tried[counter] = true
	directLedgerIDs.max = max(directLedgerIDs.max, counter)
	return counter
}

func (t *target) creditDirect(ctx context.Context, _ int, seq int64) error {
	user := t.userID(seq)
	amount := 1 + seq%creditMaxCents
	key := "adjust:" + t.newKey("direct")
	ledger := t.db.Collection(store.ColLedger)
	wallets := t.db.Collection(store.ColWallets)
	now := time.Now().UTC().Truncate(time.Second)
	uid := strconv.FormatInt(user, 10)
	latest := func() (*store.Wallet, error) {
		var w store.Wallet
		err := wallets.FindOne(ctx, bson.D{{Key: "user_id", Value: user}},
			options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&w)
		return &w, err
	}

	if err := t.db.Collection(store.ColProfiles).FindOne(ctx, bson.D{{Key: store.FieldID, Value: user}},
		options.FindOne().SetProjection(bson.D{{Key: store.FieldID, Value: 1}})).Err(); err != nil {
		return err
	}
	known, err := latest()
	if errors.Is(err, mongo.ErrNoDocuments) {
		known = nil
		if _, err := wallets.InsertOne(ctx, store.Wallet{ID: uid + ":0", UserID: user, Created: now, Updated: now}); err != nil && !mongo.IsDuplicateKeyError(err) {
			return err
		}
	} else if err != nil {
		return err
	}
	// As the store does: take the next ledger id (never one tried before)
	// and insert the entry; a conflict is a replay or a taken id, told apart
	// by a lookup of the key.
	var id int64
	for attempt := 0; ; attempt++ {
		var counter struct {
			Seq int64 `bson:"seq"`
		}
		if err := t.db.Collection(store.ColCounters).FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: store.ColLedger}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&counter); err != nil {
			return err
		}
		// The counter is shared with the server's credits; offsetting the
		// direct entries' ids keeps the two from colliding on _id.
		id = pickDirectLedgerID(counter.Seq) + 1_000_000_000
		entry := store.LedgerEntry{ID: id, Key: key, Fingerprint: fmt.Sprintf("adjust|%d|wallet|%d", user, amount),
			Kind: store.KindAdjust, Account: store.AccountWallet, UserID: user, Parties: []int64{user}, Amount: amount,
			Title: "bench credit", State: store.StatePending, Nonce: "bench", LeaseOwner: "bench", LeaseUntil: now.Add(time.Minute),
			Created: now, Updated: now}
		_, err := ledger.InsertOne(ctx, entry)
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) || attempt >= 100 {
			return err
		}
		if err := ledger.FindOne(ctx, bson.D{{Key: "idempotency_key", Value: key}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("ledger by key: %v", err)
		}
	}
	step := strconv.FormatInt(id, 10) + ":bench:a"
	for attempt := 0; ; attempt++ {
		cur := known
		known = nil
		if cur == nil {
			if err := wallets.FindOne(ctx, bson.D{{Key: "step", Value: step}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				return fmt.Errorf("wallet by step: %v", err)
			}
			if cur, err = latest(); err != nil {
				return err
			}
		}
		next := *cur
		next.Seq, next.ID, next.Step, next.Updated = cur.Seq+1, uid+":"+strconv.FormatInt(cur.Seq+1, 10), step, now
		next.Wallet += amount
		next.Totals.WalletIncome += amount
		_, err := wallets.InsertOne(ctx, next)
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) || attempt > 20 {
			return err
		}
	}
	_, err = ledger.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{store.StatePending, store.StateDebited}}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: store.StateCompleted}, {Key: "updated_at", Value: now}}}})
	return err
}
