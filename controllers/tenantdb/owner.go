package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// OwnerCollection is the reserved collection holding a database's ownership
// record. The tenant server never reads or writes it.
const OwnerCollection = "_userve_owner"

// ownerID is the record's _id: one record per database, so that two tenants
// claiming a database at once are decided by a unique insert.
const ownerID = "owner"

// Owner is the UserService a database belongs to.
type Owner struct {
	Namespace string `bson:"namespace"`
	Name      string `bson:"name"`
	UID       string `bson:"uid"`
}

func (o Owner) String() string { return o.Namespace + "/" + o.Name }

// Outcome of a claim.
type Outcome int

const (
	// Claimed: the database was new or empty, and is now the tenant's.
	Claimed Outcome = iota
	// Owned: the record already names this tenant.
	Owned
	// Adopted: the record names the same namespace and name with another
	// UID: the tenant was deleted with Retain and created again.
	Adopted
	// NotOwned: another tenant's record, or data without a record.
	NotOwned
)

// Claim is the answer to ClaimDatabase.
type Claim struct {
	Outcome Outcome
	// Holder is the record found when NotOwned; nil when the database
	// holds data without a record.
	Holder *Owner
}

// Judge decides a claim by me on a database whose record is rec (nil: no
// record), empty saying whether it holds no data. adoptUnrecorded lets a
// tenant that already used the database before records existed keep it.
func Judge(rec *Owner, me Owner, empty, adoptUnrecorded bool) Outcome {
	switch {
	case rec == nil && (empty || adoptUnrecorded):
		return Claimed
	case rec == nil:
		return NotOwned
	case rec.Namespace != me.Namespace || rec.Name != me.Name:
		return NotOwned
	case rec.UID == me.UID:
		return Owned
	default:
		return Adopted
	}
}

// ClaimDatabase makes the database the tenant's if it may use it: new or
// empty (a record is then written), or recorded as the same namespace and
// name (the UID is then brought up to date). adoptUnrecorded: see Judge.
func (p *Pool) ClaimDatabase(ctx context.Context, uri URI, database string, me Owner, adoptUnrecorded bool) (_ Claim, err error) {
	defer hide(ctx, uri, "claim database", &err)
	c, err := p.client(uri)
	if err != nil {
		return Claim{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	db := c.Database(database)
	coll := db.Collection(OwnerCollection)

	for attempt := 0; attempt < 3; attempt++ {
		rec, err := readOwner(ctx, coll)
		if err != nil {
			return Claim{}, err
		}
		empty := true
		if rec == nil {
			if empty, err = holdsNoData(ctx, db); err != nil {
				return Claim{}, err
			}
		}
		switch out := Judge(rec, me, empty, adoptUnrecorded); out {
		case Owned:
			return Claim{Outcome: Owned}, nil
		case NotOwned:
			return Claim{Outcome: NotOwned, Holder: rec}, nil
		case Adopted:
			res, err := coll.UpdateOne(ctx,
				bson.D{{Key: "_id", Value: ownerID}, {Key: "uid", Value: rec.UID}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "uid", Value: me.UID}, {Key: "adoptedAt", Value: time.Now().UTC()}}}})
			if err != nil {
				return Claim{}, fmt.Errorf("adopt database %s: %w", database, err)
			}
			if res.MatchedCount == 1 {
				return Claim{Outcome: Adopted}, nil
			}
		case Claimed:
			_, err := coll.InsertOne(ctx, bson.D{
				{Key: "_id", Value: ownerID},
				{Key: "namespace", Value: me.Namespace}, {Key: "name", Value: me.Name}, {Key: "uid", Value: me.UID},
				{Key: "claimedAt", Value: time.Now().UTC()},
			})
			if err == nil {
				return Claim{Outcome: Claimed}, nil
			}
			if !mongo.IsDuplicateKeyError(err) {
				return Claim{}, fmt.Errorf("write the ownership record of %s: %w", database, err)
			}
		}
		// Another claim won the race: judge again on its record.
	}
	return Claim{}, fmt.Errorf("claim database %s: the ownership record keeps changing", database)
}

// DatabaseOwner is the database's ownership record, nil when it has none.
func (p *Pool) DatabaseOwner(ctx context.Context, uri URI, database string) (_ *Owner, err error) {
	defer hide(ctx, uri, "read the ownership record", &err)
	c, err := p.client(uri)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return readOwner(ctx, c.Database(database).Collection(OwnerCollection))
}

func readOwner(ctx context.Context, coll *mongo.Collection) (*Owner, error) {
	var rec Owner
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: ownerID}}).Decode(&rec)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the ownership record of %s: %w", coll.Database().Name(), err)
	}
	return &rec, nil
}

// holdsNoData: no collection but the reserved ones holds a document. A
// database with empty collections (indexes made by a server that never
// stored anything) counts as empty.
func holdsNoData(ctx context.Context, db *mongo.Database) (bool, error) {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return false, fmt.Errorf("list the collections of %s: %w", db.Name(), err)
	}
	for _, name := range names {
		if name == OwnerCollection || strings.HasPrefix(name, "system.") {
			continue
		}
		n, err := db.Collection(name).CountDocuments(ctx, bson.D{}, options.Count().SetLimit(1))
		if err != nil {
			return false, fmt.Errorf("count the documents of %s.%s: %w", db.Name(), name, err)
		}
		if n > 0 {
			return false, nil
		}
	}
	return true, nil
}
