package openapi

import "net/http"

func managementInfo() S {
	return S{
		"title":   "userve management API (MinApp user module)",
		"version": Version,
		"description": "One tenant's management API, compatible with MinApp's (知晓云) user module. " +
			"Every path is also served under /oserve/ in place of /userve/. Errors are {\"status\":\"error\",\"error_msg\":...}. " +
			"Profiles carry the tenant's custom fields (spec.profile.customFields); the tenant serves its own document, with them, at /userve/openapi.json.",
	}
}

// Query parameters shared by list routes.
func limitParam() param {
	return param{name: "limit", in: "query", desc: "Page size, 1 to spec.api.minapp.maxLimit (default 20; larger values are clamped).",
		schema: with(integer(), "minimum", 1)}
}

func offsetParam() param {
	return param{name: "offset", in: "query", desc: "Rows to skip.", schema: with(integer(), "minimum", 0, "maximum", 2147483647)}
}

func query(name string, schema S, desc string) param {
	return param{name: name, in: "query", schema: schema, desc: desc}
}

func ok(desc string, schema S) response {
	return response{status: http.StatusOK, desc: desc, schema: schema}
}

func created(desc string, schema S, headers ...string) response {
	return response{status: http.StatusCreated, desc: desc, schema: schema, headers: headers}
}

func noContent(desc string) response { return response{status: http.StatusNoContent, desc: desc} }

func notFound(desc string) response {
	return response{status: http.StatusNotFound, desc: desc, schema: ref("Error")}
}

func conflict(desc string, headers ...string) response {
	return response{status: http.StatusConflict, desc: desc, schema: ref("Error"), headers: headers}
}

func jsonBody(schema S) *body { return &body{schema: schema, required: true} }

// managementOperations are the management routes by "METHOD /path" under
// /userve.
func managementOperations(c *components) map[string]operation {
	profileList := func(id, version string, params []param) operation {
		return operation{id: id, tag: "profiles", security: adminToken,
			summary: "List user profiles (" + version + ")",
			params:  params,
			responses: []response{{status: http.StatusOK, desc: "A page of profiles, ordered by user_id unless order_by says otherwise.", schema: ref("ProfileList"),
				example: S{"meta": S{"limit": 20, "next": nil, "offset": 0, "previous": nil, "total_count": 1},
					"objects": []any{c.profile()["example"]}}}},
		}
	}
	v20 := []param{
		query("created_at__gte", unix(), "Created at or after."), query("created_at__lte", unix(), "Created at or before."),
		query("created_at__gt", unix(), "Created after."), query("created_at__lt", unix(), "Created before."),
		query("gender", with(integer(), "enum", []int{0, 1, 2}), "0 unknown, 1 male, 2 female."),
		query("group__in", with(str(), "pattern", `^[0-9]+(,[0-9]+)*$`), "Members of any of these groups: 258,360."),
		query("nickname", str(), "Exact nickname."), query("nickname__contains", str(), "Nickname substring (case-sensitive)."),
		query("openid", str(), ""), query("unionid", str(), ""), query("user_id", id(), ""),
		query("order_by", enum("created_at", "-created_at", "user_id", "-user_id"), "Sort key; - for descending."),
		limitParam(), offsetParam(),
	}
	v22 := []param{
		query("where", with(str(), "contentMediaType", "application/json"),
			`A JSON condition: {field: {op: value}}, "$and", "$or"; see docs/server.md.`),
		query("order_by", with(str(), "pattern", `^-?[a-z_][a-z0-9_]*$`), "user_id, created_at, updated_at or a custom scalar field; - for descending."),
		query("return_total_count", enum("0", "1"), "1 adds meta.total_count."),
		limitParam(), offsetParam(),
	}
	getProfile := operation{id: "getProfile", tag: "profiles", security: adminToken, summary: "One user's profile",
		responses: []response{ok("The profile.", ref("Profile")), notFound("No such user.")}}
	putProfile := operation{id: "updateProfile", tag: "profiles", security: adminToken, summary: "Set or unset custom fields",
		description: "Only custom fields; a built-in or undeclared field, or any type error, changes nothing and lists every problem.",
		body:        &body{schema: ref("ProfileUpdate"), required: true},
		responses:   []response{ok("The updated profile.", ref("Profile")), notFound("No such user.")}}
	createProfile := operation{id: "createProfile", tag: "profiles", security: adminToken, summary: "Create a user",
		body:      jsonBody(ref("ProfileCreate")),
		responses: []response{created("The new profile.", ref("Profile"), "Location"), conflict("A unique value (openid, unionid, _username, _email, _phone) is taken.")}}
	deleteProfile := operation{id: "deleteProfile", tag: "profiles", security: adminToken, summary: "Delete a user",
		description: "Its follows, wallet and group memberships go with it; a delete cut short by an outage is finished by repeating it.",
		responses:   []response{noContent("Deleted."), notFound("No such user.")}}
	v := func(op operation, version string) operation {
		op.id += version
		return op
	}
	return map[string]operation{
		"GET /v2.0/miniapp/user_profile/":              profileList("listProfilesV20", "v2.0, the seed's filters", v20),
		"POST /v2.0/miniapp/user_profile/":             v(createProfile, "V20"),
		"GET /v2.0/miniapp/user_profile/{user_id}/":    v(getProfile, "V20"),
		"PUT /v2.0/miniapp/user_profile/{user_id}/":    v(putProfile, "V20"),
		"DELETE /v2.0/miniapp/user_profile/{user_id}/": v(deleteProfile, "V20"),
		"GET /v2.2/miniapp/user_profile/":              profileList("listProfilesV22", "v2.2, a where condition", v22),
		"POST /v2.2/miniapp/user_profile/":             v(createProfile, "V22"),
		"GET /v2.2/miniapp/user_profile/{user_id}/":    v(getProfile, "V22"),
		"PUT /v2.2/miniapp/user_profile/{user_id}/":    v(putProfile, "V22"),
		"DELETE /v2.2/miniapp/user_profile/{user_id}/": v(deleteProfile, "V22"),

		"GET /v1/user-group/": {id: "listGroups", tag: "groups", security: adminToken, summary: "List groups (by id)",
			params:    []param{query("parent_id", id(), "Only the children of this group."), limitParam(), offsetParam()},
			responses: []response{ok("A page of groups.", ref("GroupList"))}},
		"POST /v1/user-group/": {id: "createGroup", tag: "groups", security: adminToken, summary: "Create a group",
			body: jsonBody(object(S{"name": with(str(), "minLength", 1, "maxLength", 128), "parent": nullable(id())}, "name")),
			responses: []response{created("The new group.", ref("Group")), notFound("No such parent group."),
				conflict("A group of that name exists.")}},
		"DELETE /v1/user-group/": {id: "deleteGroups", tag: "groups", security: adminToken, summary: "Delete groups in bulk",
			description: "Ids that name no group are ignored, so a repeat succeeds.",
			params:      []param{{name: "id__in", in: "query", required: true, schema: with(str(), "pattern", `^[0-9]+(,[0-9]+)*$`), desc: "1,2,3"}},
			responses:   []response{noContent("Deleted.")}},
		"GET /v1/user-group/{id}/": {id: "getGroup", tag: "groups", security: adminToken, summary: "One group",
			responses: []response{ok("The group.", ref("Group")), notFound("No such group.")}},
		"PUT /v1/user-group/{id}/": {id: "updateGroup", tag: "groups", security: adminToken, summary: "Rename or move a group",
			description: `Changes only the fields given; "parent": null moves it to the top; cycles are refused.`,
			body:        jsonBody(object(S{"name": with(str(), "minLength", 1, "maxLength", 128), "parent": nullable(id())})),
			responses: []response{ok("The group.", ref("Group")), notFound("No such group."),
				conflict("A group of that name exists.")}},
		"DELETE /v1/user-group/{id}/": {id: "deleteGroup", tag: "groups", security: adminToken, summary: "Delete a group",
			description: "It leaves every member; its children move to the top.",
			responses:   []response{noContent("Deleted."), notFound("No such group.")}},
		"PATCH /v1/miniapp/group/membership/": {id: "patchMembership", tag: "groups", security: adminToken, summary: "Add users to groups or remove them",
			description: "Every operation is checked, and every named user and group must exist, before anything changes. At most 100 operations, 1000 users and 1000 groups.",
			body:        jsonBody(with(arrayOf(ref("MembershipChange")), "minItems", 1, "maxItems", 100)),
			responses:   []response{noContent("Applied."), notFound("A named user or group does not exist.")}},

		"POST /v1/wallet/transactions/": {id: "createWalletTransaction", tag: "wallets", security: adminToken, summary: "Credit or debit a wallet",
			description: "The same idempotency_key again answers with the same entry and moves nothing.",
			body: jsonBody(object(S{
				"user_id":         id(),
				"account":         enum("wallet", "new_wallet", "currency"),
				"amount":          with(integer(), "not", S{"const": 0}, "description", "Negative to debit."),
				"title":           str(),
				"idempotency_key": with(str(), "minLength", 1, "pattern", `^[!-~]+$`),
			}, "user_id", "account", "amount")),
			responses: []response{
				created("The ledger entry.", ref("Transaction"), "Idempotent-Replayed"),
				{status: http.StatusOK, desc: "A replay of an earlier request with the same key: its entry.", schema: ref("Transaction"), headers: []string{"Idempotent-Replayed"}},
				notFound("No such user."), conflict("The same key is still in progress.", "Retry-After")}},
		"GET /v1/wallet/transactions/": {id: "listWalletTransactions", tag: "wallets", security: adminToken, summary: "List ledger entries, newest first",
			params:    []param{query("user_id", id(), "Entries of this user."), query("account", enum("wallet", "new_wallet", "currency"), ""), limitParam(), offsetParam()},
			responses: []response{ok("A page of entries.", ref("TransactionList"))}},

		"PUT /v1/users/{user_id}/ban/": {id: "banUser", tag: "lifecycle", security: adminToken, summary: "Ban a user",
			description: "From the next request on, on every replica and in every dialect, the user's tokens are refused and every login " +
				"answers 403 with the reason, until expires_at (unix seconds; left out or null: no expiry). A second ban replaces the first. " +
				"Sessions are not ended: after the ban, tokens still within their login's refresh window work again.",
			body: jsonBody(object(S{"reason": with(str(), "minLength", 1, "maxLength", 500, "description", "Shown to the user."),
				"expires_at": nullable(unix())}, "reason")),
			responses: []response{ok("The profile, banned.", ref("Profile")), notFound("No such user.")}},
		"DELETE /v1/users/{user_id}/ban/": {id: "unbanUser", tag: "lifecycle", security: adminToken, summary: "Lift a user's ban",
			description: "Also when there is none.",
			responses:   []response{ok("The profile.", ref("Profile")), notFound("No such user.")}},
		"GET /v1/users/{user_id}/sessions/": {id: "listUserSessions", tag: "lifecycle", security: adminToken, summary: "A user's sessions (logins), newest first",
			description: "Live sessions only: not ended, not past their refresh deadline, not older than the last password change. At most 100.",
			responses:   []response{ok("The sessions.", ref("SessionList")), notFound("No such user.")}},
		"DELETE /v1/users/{user_id}/sessions/": {id: "endUserSessions", tag: "lifecycle", security: adminToken, summary: "End every session of a user",
			responses: []response{noContent("Ended: every token of the user is refused."), notFound("No such user.")}},
		"DELETE /v1/users/{user_id}/sessions/{session_id}/": {id: "endUserSession", tag: "lifecycle", security: adminToken, summary: "End one session of a user",
			description: "Every token of that login is refused from now on, on every replica.",
			responses:   []response{noContent("Ended."), notFound("No such session of this user.")}},

		"GET /v1/users/{user_id}/logins/": {id: "listUserLogins", tag: "lifecycle", security: adminToken, summary: "A user's login history, newest first",
			description: "Login attempts on the account (successes, wrong passwords or codes, throttled and banned attempts) within the tenant's " +
				"spec.api.plus.loginHistory (default 30 days). At most 100.",
			responses: []response{ok("The attempts.", ref("LoginList")), notFound("No such user.")}},

		"GET /v1/users/{user_id}/overview/": {id: "getUserOverview", tag: "users", security: adminToken, summary: "A user's follows counts and wallet balances",
			description: "What the console's user page shows next to the profile: followers, followings, and the balances of the three wallet accounts.",
			responses:   []response{ok("The counts and balances.", ref("UserOverview")), notFound("No such user.")}},

		"POST /v1/user-merge/": {id: "mergeUsers", tag: "users", security: adminToken, summary: "Fold one user into another",
			description: "Moves from's identities, memberships, follows and balances to into, then deletes from. Replaying the request finishes a merge cut short.",
			body:        jsonBody(object(S{"from": id(), "into": id(), "idempotency_key": with(str(), "minLength", 1)}, "from", "into")),
			responses: []response{
				{status: http.StatusOK, desc: "The merge, done.", schema: ref("MergeResult"), headers: []string{"Idempotent-Replayed"}},
				notFound("No such user."),
				conflict("Both hold the same kind of identity, a user was merged already, or the merge is busy.", "Retry-After")}},

		"POST /v1/import/users/": {id: "importUsers", tag: "migration", security: adminToken, summary: "Import up to 1,000 users",
			description: "JSON Lines or a JSON array of records in the chosen format (docs/migration.md). One result per record, in order; a retried batch changes nothing twice.",
			params: []param{
				query("format", enum("minapp", "thinksns", "userve"), "The records' format (default userve)."),
				query("on_conflict", enum("skip", "update", "fail"), "What a record whose natural key exists does (default skip)."),
				query("dry_run", enum("0", "1", "true", "false"), "Validate without writing."),
			},
			body: &body{required: true, media: []string{"application/json", "application/x-ndjson"},
				schema: S{"description": "application/json: a JSON array of records; application/x-ndjson: one record a line (the server reads either, whatever the label). Record fields by format: docs/migration.md."}},
			responses: []response{ok("One result per record.", ref("ImportResult")),
				conflict("The same records are being imported by another request; retry the batch.", "Retry-After")}},
		"GET /v1/export/users/": {id: "exportUsers", tag: "migration", security: adminToken, summary: "Stream every user as JSON Lines",
			params: []param{
				query("where", with(str(), "contentMediaType", "application/json"), "A v2.2 where condition."),
				query("include", enum("password_hash"), "Add password hashes (logged as such)."),
			},
			responses: []response{{status: http.StatusOK, desc: "One user a line, in userve's import format.", media: "application/x-ndjson", schema: ref("ExportRecord")},
				{status: http.StatusTooManyRequests, desc: "This replica already streams its maximum of exports; retry after Retry-After seconds.", schema: ref("Error"), headers: []string{"Retry-After"}}}},

		"GET /v1/audit/": {id: "listAudit", tag: "audit", security: adminToken, summary: "Read the audit log, newest first",
			description: "Every admin action through this API (each change and each export) is logged before it runs; the log is read-only (docs/server.md).",
			params: []param{
				query("admin", with(str(), "maxLength", 64), "Entries of this admin token's name."),
				query("user_id", id(), "Entries about this user."),
				query("action", with(str(), "maxLength", 64), "Entries of this operation id (e.g. updateProfileV20)."),
				query("since", with(integer(), "minimum", 0), "Entries at or after this time (unix seconds)."),
				query("until", with(integer(), "minimum", 0), "Entries before this time (unix seconds)."),
				query("after", with(str(), "pattern", "^[0-9a-f]{24}$"), "Cursor: entries older than this entry id (meta.next carries it)."),
				limitParam(), offsetParam(),
			},
			responses: []response{ok("A page of entries.", ref("AuditList"))}},

		"GET /openapi.json": {id: "getManagementOpenAPI", tag: "meta", security: adminToken, summary: "This document, with the tenant's custom fields",
			responses: []response{ok("The OpenAPI 3.1 document.", ref("OpenAPIDocument"))}},
	}
}
