package openapi

import "userve.dev/userve/api/v1alpha1"

// ManagementOperationIDs maps "METHOD /path" (under /userve, e.g.
// "PUT /v2.0/miniapp/user_profile/{user_id}/") to the route's operation
// id, the name the audit log records an action by.
func ManagementOperationIDs() map[string]string {
	ops := managementOperations(newComponents(v1alpha1.UserServiceSpec{}))
	ids := make(map[string]string, len(ops))
	for route, op := range ops {
		ids[route] = op.id
	}
	return ids
}
