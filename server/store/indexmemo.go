package store

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// IndexRecheck is how long an IndexMemo trusts a verification: a store
// client made later than that after the last one lists its collections'
// indexes again, and so finds and remakes an index dropped or changed by
// hand.
const IndexRecheck = time.Hour

// IndexMemo remembers, for one tenant from one store client to the next,
// that its indexes were verified (listed, and made where missing) and
// when. A pool closes an idle tenant's client and makes a new one on its
// next request; with the memo, that activation sends no listIndexes for
// an hour after the last verification (IndexRecheck): 22 round trips less
// (4 before the request, 18 after it), and FerretDB's work with them.
//
// What it trusts is bound to what was verified: the MongoDB URI, the
// database and the wanted indexes (custom fields included). A client of
// another URI or database, or a tenant whose custom fields changed,
// verifies again; so does any client after IndexRecheck, and every client
// once a verification failed. It lives in memory only: a restarted
// process verifies every tenant once. The zero value is an empty memo
// (a pool keeps one in each tenant's struct: no allocation of its own).
type IndexMemo struct {
	mu     sync.Mutex
	key    [sha256.Size]byte
	unique time.Time // when the unique indexes were last verified (zero: never)
	all    time.Time // when all of them were
}

// WithIndexMemo makes the store's index checks (EnsureIndexes,
// EnsureUniqueIndexes) trust m's recent verifications of the same indexes
// and record their own in it.
func WithIndexMemo(m *IndexMemo) Option { return func(s *Store) { s.indexMemo = m } }

// indexKey names what a verification covers: where, which database,
// which indexes.
func indexKey(uri, database string, specs []IndexSpec) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q", uri, database)
	for _, sp := range specs {
		fmt.Fprintf(h, " %q %q %v %v %v", sp.Collection, sp.Name, sp.Keys, sp.Unique, sp.Optional)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// fresh reports whether the indexes under key (all of them, or the unique
// ones) were verified within IndexRecheck before now.
func (m *IndexMemo) fresh(key [sha256.Size]byte, all bool, now time.Time) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at := m.unique
	if all {
		at = m.all
	}
	return m.key == key && !at.IsZero() && now.Sub(at) < IndexRecheck && !now.Before(at)
}

// verified records a successful verification at now.
func (m *IndexMemo) verified(key [sha256.Size]byte, all bool, now time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key != key {
		m.key, m.unique, m.all = key, time.Time{}, time.Time{}
	}
	m.unique = now
	if all {
		m.all = now
	}
}

// failed forgets every verification: the next client checks again.
func (m *IndexMemo) failed() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unique, m.all = time.Time{}, time.Time{}
}
