package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// FerretDB over SQLite refuses colliding writes with an InternalError
// naming SQLITE_BUSY (modernc.org/sqlite's wording, wrapped by FerretDB).
var sqliteBusy = mongo.CommandError{Code: 1, Name: "InternalError",
	Message: "[pool.go:170 sqlite.(*Pool).Exec] database is locked (5) (SQLITE_BUSY)"}

// poolCleared is what the driver's (unexported) poolClearedError is: a
// driver.RetryablePoolError. Seen as a 500 under load before: "connection
// pool for 127.0.0.1:33605 was cleared because another operation failed
// with: connection() error occurred during connection handshake: auth
// error: unable to authenticate using mechanism ...".
type poolCleared struct{}

func (poolCleared) Error() string {
	return "connection pool for 127.0.0.1:1 was cleared because another operation failed"
}
func (poolCleared) Retryable() bool { return true }

func TestClassifyTransientErrorsAsUnavailable(t *testing.T) {
	for name, err := range map[string]error{
		"SQLITE_BUSY command": sqliteBusy,
		"SQLITE_BUSY write": mongo.WriteException{WriteErrors: []mongo.WriteError{
			{Code: 1, Message: "database is locked (5) (SQLITE_BUSY)"}}},
		"deadline":            context.DeadlineExceeded,
		"pool cleared":        fmt.Errorf("find: %w", poolCleared{}),
		"client disconnected": mongo.ErrClientDisconnected,
	} {
		got := classify(err)
		if !errors.Is(got, ErrUnavailable) {
			t.Errorf("%s: classify = %v, want ErrUnavailable", name, got)
		}
		if !IsTransient(got) || !IsTransient(err) {
			t.Errorf("%s: IsTransient false", name)
		}
	}
	// Still retried at once inside the store after classification.
	if !transient(classify(sqliteBusy)) {
		t.Error("classified SQLITE_BUSY no longer retried by the store")
	}
}

func TestIsTransient(t *testing.T) {
	for _, err := range []error{
		ErrUnavailable, fmt.Errorf("%w: server selection timeout", ErrUnavailable),
		ErrWalletBusy, fmt.Errorf("adjust: %w", ErrWalletBusy),
		context.DeadlineExceeded, fmt.Errorf("store: %w", sqliteBusy),
	} {
		if !IsTransient(err) {
			t.Errorf("IsTransient(%v) = false, want true", err)
		}
	}
	for _, err := range []error{
		nil, ErrNotFound, &ConflictError{Field: FieldEmail}, ErrInsufficientFunds,
		errors.New("store: bad filter"), mongo.CommandError{Code: 2, Name: "BadValue", Message: "unknown operator"},
	} {
		if IsTransient(err) {
			t.Errorf("IsTransient(%v) = true, want false", err)
		}
	}
}

func TestRetryTransientUpToIsBounded(t *testing.T) {
	ctx := context.Background()
	busyThen := func(busy int, final error) (func() error, *int) {
		calls := 0
		return func() error {
			calls++
			if calls <= busy {
				return classify(sqliteBusy)
			}
			return final
		}, &calls
	}
	// Busy twice, then through: the caller never sees the busy moments.
	op, calls := busyThen(2, nil)
	if err := retryTransientUpTo(ctx, maxBusyAttempts, op); err != nil || *calls != 3 {
		t.Errorf("busy twice: err %v after %d calls, want nil after 3", err, *calls)
	}
	// Busy for good: gives up after the bound with the transient error.
	op, calls = busyThen(1000, nil)
	if err := retryTransientUpTo(ctx, maxBusyAttempts, op); !IsTransient(err) || *calls != maxBusyAttempts {
		t.Errorf("always busy: err %v after %d calls, want transient after %d", err, *calls, maxBusyAttempts)
	}
	// Other errors are final at once.
	op, calls = busyThen(0, ErrConflict)
	if err := retryTransientUpTo(ctx, maxBusyAttempts, op); !errors.Is(err, ErrConflict) || *calls != 1 {
		t.Errorf("conflict: err %v after %d calls, want ErrConflict after 1", err, *calls)
	}
	// A cancelled request stops retrying.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	op, calls = busyThen(1000, nil)
	if err := retryTransientUpTo(cctx, maxBusyAttempts, op); err == nil || *calls != 1 {
		t.Errorf("cancelled: err %v after %d calls, want an error after 1", err, *calls)
	}
}

// FerretDB's findAndModify reports a unique index violation as an
// InternalError from SQLite; it is a conflict on the index's field, not a
// 500 (found by TestWeChatLinkConflicts: 30 users linking one openid).
func TestClassifyFerretDBUniqueViolationOnUpdate(t *testing.T) {
	err := mongo.CommandError{Code: 1, Name: "InternalError", Message: "[msg_findandmodify.go:196 handler.(*Handler).findAndModifyDocument] " +
		"[collection.go:177 sqlite.(*collection).UpdateAll.func1] constraint failed: UNIQUE constraint failed: index 'profiles_86daf527_openid_unique' (2067)"}
	var ce *ConflictError
	if got := classify(err); !errors.As(got, &ce) || ce.Field != FieldOpenID {
		t.Fatalf("classify = %v, want a conflict on openid", got)
	}
}
