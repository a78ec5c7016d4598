package console

import "fmt"

// The console's pages beyond the users' and the audit log's (groups,
// import and export, event deliveries): their routes, menu entries, strings and
// template helpers, added to the framework's at start.

func init() {
	// Groups and import after the users, deliveries after the audit log.
	menu = append(append([]navItem{menu[0],
		{Key: "nav_groups", Path: "/groups/"},
		{Key: "nav_transfer", Path: "/transfer/"},
	}, menu[1:]...), navItem{Key: "nav_deliveries", Path: "/deliveries/"})
	for l, msgs := range moreMessages {
		for k, s := range msgs {
			if _, dup := messages[l][k]; dup {
				panic(fmt.Sprintf("console: message %q of %s defined twice", k, l))
			}
			messages[l][k] = s
		}
	}
	funcs["list2"] = func(a, b any) []any { return []any{a, b} }
}

// moreRoutes registers the pages of this file's list (called by routes).
func (h *Handler) moreRoutes() {
	b := h.base
	// Groups (groups.go) and batch membership from the user list (members.go).
	h.mux.HandleFunc("GET "+b+"/groups/{$}", h.page(h.groupsPage))
	h.mux.HandleFunc("POST "+b+"/groups/create", h.action(h.createGroup))
	h.mux.HandleFunc("GET "+b+"/groups/{id}/{$}", h.page(h.groupPage))
	for name, act := range h.groupActions() {
		h.mux.HandleFunc("POST "+b+"/groups/{id}/"+name, h.action(act))
	}
	h.mux.HandleFunc("POST "+b+"/users/membership", h.action(h.batchMembership))
	// Import and export (transfer.go).
	h.mux.HandleFunc("GET "+b+"/transfer/{$}", h.page(h.transferPage))
	h.mux.HandleFunc("POST "+b+"/import/batch", h.action(h.importBatch))
	// Event deliveries (deliveries.go).
	h.mux.HandleFunc("GET "+b+"/deliveries/{$}", h.page(h.deliveriesPage))
	h.mux.HandleFunc("POST "+b+"/deliveries/{id}/retry", h.action(h.retryDelivery))
}
