package store

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// DeletedUser is the user id a deleted user's ledger entries show in its
// place: the entries stay, so the other side's balance is still explained,
// but they no longer name the person.
const DeletedUser int64 = 0

func init() { RegisterUserCleanup(anonymizeLedger) }

// anonymizeLedger finishes the user's stalled ledger entries (a transfer
// to them is then refunded once their wallet is gone, which happens in a
// later cleanup) and replaces their id in the finished ones by
// DeletedUser. Entries still unfinished keep the id: recovery needs it.
// It runs before deleteWallet (file order: anonymize.go < wallets.go).
func anonymizeLedger(ctx context.Context, s *Store, user int64) error {
	if _, err := s.RecoverLedger(ctx, user); err != nil {
		return err
	}
	var entries []LedgerEntry
	if err := s.findAll(ctx, ColLedger, bson.D{{Key: "parties", Value: user}}, &entries); err != nil {
		return err
	}
	for _, e := range entries {
		if e.State == StatePending || e.State == StateDebited {
			continue
		}
		set := bson.D{}
		if e.UserID == user {
			set = append(set, bson.E{Key: "user_id", Value: DeletedUser})
		}
		if e.To == user {
			set = append(set, bson.E{Key: "to", Value: DeletedUser})
		}
		parties := make([]int64, 0, len(e.Parties))
		for _, p := range e.Parties {
			if p == user {
				p = DeletedUser
			}
			parties = append(parties, p)
		}
		set = append(set, bson.E{Key: "parties", Value: parties}, bson.E{Key: "anonymized", Value: true})
		err := retryTransient(ctx, func() error {
			octx, cancel := s.opContext(ctx)
			defer cancel()
			_, err := s.col(ColLedger).UpdateOne(octx, bson.D{{Key: "_id", Value: e.ID}}, bson.D{{Key: "$set", Value: set}})
			return err
		})
		if err != nil {
			return classify(err)
		}
	}
	return nil
}
