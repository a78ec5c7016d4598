package openapi

import (
	"sync"

	"userve.dev/userve/api/v1alpha1"
)

// ManagementOperationIDs maps "METHOD /path" (under /userve, e.g.
// "PUT /v2.0/miniapp/user_profile/{user_id}/") to the route's operation
// id, the name the audit log records an action by. The map is built once
// per process and shared: callers must not change it.
func ManagementOperationIDs() map[string]string { return managementOperationIDs() }

// managementOperationIDs is built once: every tenant's server asks for it,
// and it does not depend on the tenant (a pool builds many servers).
var managementOperationIDs = sync.OnceValue(func() map[string]string {
	ops := managementOperations(newComponents(v1alpha1.UserServiceSpec{}))
	ids := make(map[string]string, len(ops))
	for route, op := range ops {
		ids[route] = op.id
	}
	return ids
})
