package seed

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/server/store"
)

// HasWallet: every fifth user has money, like the paying fraction of an
// app's users.
func HasWallet(id int64) bool { return id%5 == 0 }

// walletDocs are a funded user's wallet as the store keeps it (see
// server/store/wallets.go): version 0 opens the wallet, version 1 is a
// completed management credit whose ledger entry has id ledgerID, so the
// store's invariant (balance = completed entries) holds.
func (g *Gen) walletDocs(user, ledgerID int64) (v0, v1 *store.Wallet, entry *store.LedgerEntry) {
	r := g.rng(3, uint64(user))
	opened := g.Profile(user).Created
	amount := int64(100 + r.IntN(100000))
	step := strconv.FormatInt(ledgerID, 10) + ":a"
	v0 = &store.Wallet{ID: strconv.FormatInt(user, 10) + ":0", UserID: user, Seq: 0, Created: opened, Updated: opened}
	v1 = &store.Wallet{ID: strconv.FormatInt(user, 10) + ":1", UserID: user, Seq: 1, Wallet: amount,
		Totals: store.Totals{WalletIncome: amount}, Step: step, Created: opened, Updated: opened.Add(time.Hour)}
	entry = &store.LedgerEntry{ID: ledgerID, Key: "adjust:seed-" + strconv.FormatInt(user, 10),
		Fingerprint: fmt.Sprintf("adjust|%d|%s|%d", user, store.AccountWallet, amount),
		Kind:        store.KindAdjust, Account: store.AccountWallet, UserID: user, Parties: []int64{user},
		Amount: amount, Title: "welcome bonus", State: store.StateCompleted,
		LeaseUntil: opened, Created: opened, Updated: opened}
	return v0, v1, entry
}

// InsertWallets funds every HasWallet user and returns how many wallets it
// opened; the ledger sequence moves past the seeded entries.
func (g *Gen) InsertWallets(ctx context.Context, db *mongo.Database) (int, error) {
	var wallets, entries []any
	var ledgerID int64
	flush := func() error {
		if len(wallets) == 0 {
			return nil
		}
		if _, err := db.Collection(store.ColWallets).InsertMany(ctx, wallets, options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("insert wallets: %w", err)
		}
		if _, err := db.Collection(store.ColLedger).InsertMany(ctx, entries, options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("insert ledger: %w", err)
		}
		wallets, entries = wallets[:0], entries[:0]
		return nil
	}
	n := 0
	for user := int64(1); user <= int64(g.cfg.Profiles); user++ {
		if !HasWallet(user) {
			continue
		}
		ledgerID++
		v0, v1, e := g.walletDocs(user, ledgerID)
		wallets = append(wallets, v0, v1)
		entries = append(entries, e)
		n++
		if len(wallets) >= batchSize {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	_, err := db.Collection(store.ColCounters).UpdateOne(ctx, bson.D{{Key: "_id", Value: store.ColLedger}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: ledgerID}}}}, options.UpdateOne().SetUpsert(true))
	return n, err
}
