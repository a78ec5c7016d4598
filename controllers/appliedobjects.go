package controllers

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"k8s.io/apimachinery/pkg/types"
)

// appliedObjectsRemembered bounds appliedObjects: about four objects per
// tenant at 10,000 tenants fit, and the entries of deleted objects (the
// garbage collector removes a tenant's objects without the operator
// hearing of each) age out instead of piling up for the operator's life.
const appliedObjectsRemembered = 1 << 16

// appliedObjects remembers, by UID, the objects whose fields the operator's
// apply owns, so that their updates skip upgradeOwnership's read: a pool
// pod's flip updates every tenant's EndpointSlice. Forgetting one costs a
// read and no write (the upgrade finds nothing to hand over). The zero
// value is ready to use.
type appliedObjects struct {
	// limit overrides appliedObjectsRemembered (tests).
	limit int
	once  sync.Once
	cache *lru.Cache[types.UID, struct{}]
}

func (a *appliedObjects) init() {
	a.once.Do(func() {
		limit := a.limit
		if limit <= 0 {
			limit = appliedObjectsRemembered
		}
		a.cache, _ = lru.New[types.UID, struct{}](limit) // errs only on a size ≤ 0
	})
}

// has says whether uid's fields are known to be the apply's.
func (a *appliedObjects) has(uid types.UID) bool {
	if a == nil || uid == "" {
		return false
	}
	a.init()
	_, ok := a.cache.Get(uid)
	return ok
}

// add records that uid's fields are the apply's.
func (a *appliedObjects) add(uid types.UID) {
	if a == nil || uid == "" {
		return
	}
	a.init()
	a.cache.Add(uid, struct{}{})
}
