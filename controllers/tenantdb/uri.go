package tenantdb

import (
	"context"
	"errors"

	"github.com/go-logr/logr"

	"userve.dev/userve/internal/mongouri"
)

// URI is a MongoDB URI the operator dials, with whose it is.
type URI struct {
	value  string
	tenant bool
}

// OperatorURI is the operator's default MongoDB, set up by the platform's
// administrator: dialed as written (it may name the operator's own CA file).
func OperatorURI(s string) URI { return URI{value: s} }

// TenantURI is a URI a tenant supplied (spec.mongo.uriSecretRef): dialed
// only if mongouri's policy allows it, with options that take credentials
// from the URI alone, and every failure reads as ErrTenantDatabase.
func TenantURI(s string) URI { return URI{value: s, tenant: true} }

// Value is the URI's text (with its password).
func (u URI) Value() string { return u.value }

// IsZero: no URI.
func (u URI) IsZero() bool { return u.value == "" }

// Tenant says whether the URI is a tenant's.
func (u URI) Tenant() bool { return u.tenant }

// ErrTenantDatabase is every failure at a tenant-supplied URI, whatever
// happened (no route, refused, timed out, something that is not MongoDB, a
// failed command): distinct texts would let a tenant map which addresses
// answer from the operator's network position. The driver's error goes to
// the operator's log.
var ErrTenantDatabase = errors.New("the MongoDB server of spec.mongo.uriSecretRef could not be used from the operator " +
	"(one message for every cause: the operator's log has the details, the tenant's own pods log theirs)")

// hide replaces *err, when u is a tenant's, by ErrTenantDatabase after
// logging it. A policy refusal is kept: it names the URI's option, not
// anything the network said.
func hide(ctx context.Context, u URI, op string, err *error) {
	if *err == nil || !u.tenant {
		return
	}
	var refused *mongouri.RefusedError
	if errors.As(*err, &refused) || errors.Is(*err, mongouri.ErrUnparsable) {
		return
	}
	logr.FromContextOrDiscard(ctx).Info("tenant MongoDB failed", "operation", op, "error", (*err).Error())
	*err = ErrTenantDatabase
}
