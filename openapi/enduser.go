package openapi

import "net/http"

func endUserInfo() S {
	return S{
		"title":   "userve end-user API (ThinkSNS Plus v2 users)",
		"version": Version,
		"description": "One tenant's end-user API, compatible with ThinkSNS Plus v2's users. Bodies are JSON or url-encoded forms. " +
			"Errors are {\"message\": ...}; invalid input is a 422 that also lists problems by field in errors. " +
			"Every route takes exactly the parameters and fields listed; another name is a 422 naming it.",
	}
}

// Body field schemas of the end-user dialect. Forms carry every value as a
// string, so numbers accept their decimal strings too.
var (
	intOrString = S{"anyOf": []S{integer(), with(str(), "pattern", `^-?[0-9]+$`)}}
	codeSchema  = S{"anyOf": []S{str(), integer()}, "description": "The verification code (6 digits)."}
	verifiable  = enum("sms", "mail")
	phoneSchema = with(str(), "description", "5-20 digits, optional leading +")
	emailSchema = with(str(), "format", "email")
	nameSchema  = with(str(), "description", "2-12 display units (ASCII counts half); letters, digits, _; not starting with a digit")
)

// form is a request body taken as JSON or as a url-encoded form.
func form(schema S) *body {
	return &body{schema: schema, required: true, media: []string{"application/json", "application/x-www-form-urlencoded"}}
}

func formProps(props S, required ...string) *body { return form(object(props, required...)) }

// optionalForm is a body that may be left out (every field optional).
func optionalForm(props S) *body {
	b := formProps(props)
	b.required = false
	return b
}

func endUserError(status int, desc string, headers ...string) response {
	return response{status: status, desc: desc, schema: ref("Error"), headers: headers}
}

func tooMany(desc string) response {
	return endUserError(http.StatusTooManyRequests, desc, "Retry-After")
}

var (
	msgSchema   = object(S{"message": str()}, "message")
	unsupported = endUserError(http.StatusUnsupportedMediaType, "The body is neither JSON nor a url-encoded form.")
)

// endUserOperations are the end-user routes by "METHOD /path" under /api/v2.
func endUserOperations(c *components) map[string]operation {
	pageParams := []param{
		query("limit", with(integer(), "minimum", 1, "maximum", 50), "Page size (default 20)."),
		query("offset", with(integer(), "minimum", 0, "maximum", 10000), "Rows to skip; deeper pages are refused (use the route's cursor)."),
	}
	// {user} by phone or e-mail: a token is needed, and each lookup counts.
	lookupResponses := []response{
		endUserError(http.StatusUnauthorized, "A token was sent but is invalid, expired, revoked or of a deleted user; "+
			"or an anonymous caller named the user by e-mail or phone (unless it is a user's id): looking users up by contact needs a token.",
			"WWW-Authenticate"),
		endUserError(http.StatusNotFound, "No such user."),
		tooMany("The caller has looked up as many users by phone or e-mail as it may this hour (docs/plus.md)."),
	}
	userList := func(id, summary string, sec security) operation {
		return operation{id: id, tag: "users", security: sec, summary: summary, params: pageParams,
			responses: append([]response{ok("Users, newest follow first.", arrayOf(ref("User")))}, lookupResponses...)}
	}
	orders := func(opID, account string) operation {
		return operation{id: opID, tag: "wallets", security: userToken, summary: "The caller's " + account + " orders, newest first",
			params: append(append([]param(nil), pageParams...),
				query("after", id(), "Only orders older than this id (a cursor)."),
				query("action", enum("all", "income", "expenses"), "")),
			responses: []response{ok("Orders.", arrayOf(ref("Order")))}}
	}
	codeBody := formProps(S{"phone": phoneSchema, "email": emailSchema})
	sendCodeResponses := []response{
		{status: http.StatusAccepted, desc: "The code is on its way.", schema: msgSchema},
		endUserError(http.StatusForbidden, "A code was sent to this target less than 60 s ago.", "Retry-After"),
		tooMany("Too many codes from this address, to this target today, or by this tenant this hour."),
		unsupported,
	}
	const wrongPasswords = "Too many wrong passwords for this account from this address, for it from all addresses, or failures from this address (docs/plus.md, Attempt limits)."
	unbind := func(id, what string) operation {
		return operation{id: id, tag: "account", security: userToken, summary: "Unbind the caller's " + what,
			body:      formProps(S{"password": str(), "verifiable_code": codeSchema}),
			responses: []response{noContent("Unbound."), tooMany(wrongPasswords), unsupported}}
	}
	// Changes that add a way into the account need proof of the owner
	// past spec.api.plus.reauthWindow (server/plus/reauth.go).
	reauthNote := " Past the tenant's re-authentication window (spec.api.plus.reauthWindow, default 10 minutes after the login; a refresh " +
		"keeps the login time) it also needs proof that the caller is the owner: "
	reauthRequired := endUserError(http.StatusForbidden, "Proof that the caller is the owner is needed: the login is older than the re-authentication window.")
	ops := map[string]operation{
		"POST /verifycodes/register": {id: "sendRegisterCode", tag: "account", summary: "Send a registration code to a phone or e-mail not in use",
			body: codeBody, responses: sendCodeResponses},
		"POST /verifycodes": {id: "sendCode", tag: "account", summary: "Send a code to a phone or e-mail of an existing user",
			body: codeBody, responses: sendCodeResponses},
		"POST /users": {id: "register", tag: "account", summary: "Register with a verification code",
			body: formProps(S{"name": nameSchema, "phone": phoneSchema, "email": emailSchema, "password": str(),
				"verifiable_type": verifiable, "verifiable_code": codeSchema}, "name", "verifiable_code"),
			responses: []response{
				created("The user exists; its first token.", object(S{"token": str(), "ttl": integer(), "refresh_ttl": integer()}, "token", "ttl", "refresh_ttl")),
				tooMany("The code has had all its tries."), unsupported}},
		"POST /auth/login": {id: "login", tag: "account", summary: "Log in with a password or a verification code",
			description: "login is a name, e-mail or phone. Wrong credentials are a 422 whether or not the account exists.",
			body:        formProps(S{"login": str(), "password": str(), "verifiable_code": codeSchema}, "login"),
			responses: []response{ok("A token.", ref("LoginToken")), bannedResponse,
				tooMany("Too many failed logins for this account from this address, for it from all addresses, or from this address (docs/plus.md, Attempt limits)."), unsupported}},
		"POST /auth/refresh": {id: "refreshToken", tag: "account", security: refreshToken, summary: "Exchange a token (expired or not) for a new one",
			description: "Each token refreshes once, within the login's refresh window. A token presented for refresh a second time " +
				"(a sign that it was stolen) is refused and ends every token of its login, which then logs in again.",
			responses: []response{ok("A new token.", ref("LoginToken"))}},
		"POST /auth/logout": {id: "logout", tag: "account", security: userToken, summary: "End the caller's login",
			description: "Revokes the token and every token refreshed from the same login.",
			responses:   []response{ok("Logged out.", msgSchema)}},
		"PUT /user/retrieve-password": {id: "retrievePassword", tag: "account", summary: "Set a new password with a code sent to the account",
			body: formProps(S{"verifiable_type": verifiable, "phone": phoneSchema, "email": emailSchema, "verifiable_code": codeSchema, "password": str()},
				"verifiable_code", "password"),
			responses: []response{noContent("Changed; every older token stops working."),
				tooMany("The code has had all its tries, or this address has had too many failures (docs/plus.md, Attempt limits)."), unsupported}},

		"GET /users": {id: "listUsers", tag: "users", security: optionalToken, summary: "List users",
			params: []param{
				query("limit", with(integer(), "minimum", 1, "maximum", 50), "Page size (default 20)."),
				query("order", enum("asc", "desc"), "By id (default desc)."),
				query("since", id(), "The last id of the previous page."),
				query("name", str(), "Name substring; with fetch_by=username, exact names separated by commas."),
				query("fetch_by", enum("id", "username"), ""),
				query("id", with(str(), "pattern", `^[0-9]+(,[0-9]+)*$`), "One id or several separated by commas."),
			},
			responses: []response{ok("Users.", arrayOf(ref("User"))), tooMany("This address has searched by name substring as often as it may this minute (docs/plus.md).")}},
		"GET /users/{user}": {id: "getUser", tag: "users", security: optionalToken, summary: "One user by id, name, e-mail or phone",
			params: []param{
				query("following", id(), "Tell whether this user follows them (default: the caller)."),
				query("follower", id(), "Tell whether they follow this user (default: the caller)."),
			},
			responses: append([]response{ok("The user.", ref("User"))}, lookupResponses...)},
		"GET /users/{user}/followings": userList("listUserFollowings", "Whom a user follows", optionalToken),
		"GET /users/{user}/followers":  userList("listUserFollowers", "Who follows a user", optionalToken),

		"GET /user": {id: "getMe", tag: "me", security: userToken, summary: "The caller, with contact details and wallets",
			responses: []response{ok("The caller.", ref("Me"))}},
		"PATCH /user": {id: "updateMe", tag: "me", security: userToken, summary: "Change name, bio, sex, location, avatar or bg",
			body: optionalForm(S{"name": nameSchema, "bio": str(), "sex": with(intOrString, "description", "0, 1 or 2"), "location": str(),
				"avatar": nullable(str()), "bg": nullable(str())}),
			responses: []response{noContent("Changed."), unsupported}},
		"DELETE /user": {id: "deleteMe", tag: "me", security: userToken, summary: "Delete the caller's account",
			description: "Needs the password or a code sent to the account. Every token of the user stops working at once and the id is never given to " +
				"another user (imports included). Follows (with the other side's counts), memberships and the wallet go; ledger entries stay, anonymized.",
			body:      formProps(S{"password": str(), "verifiable_code": codeSchema, "verifiable_type": verifiable}),
			responses: []response{noContent("Deleted."), tooMany(wrongPasswords), unsupported}},
		"GET /user/export": {id: "exportMe", tag: "me", security: userToken, summary: "Everything the service holds about the caller",
			responses: []response{ok("The caller's data.", ref("SelfExport"))}},
		"PUT /user": {id: "updateContact", tag: "me", security: userToken, summary: "Bind a new phone or e-mail, proven by a code sent to it",
			description: "verifiable_code is a code sent to the new phone or e-mail (POST /verifycodes/register)." + reauthNote +
				"password, or current_verifiable_code, a code sent to the account's phone (else e-mail) with POST /verifycodes. " +
				"The account's previous phone and e-mail are told of the change.",
			body: formProps(S{"phone": phoneSchema, "email": emailSchema, "verifiable_code": codeSchema,
				"password": str(), "current_verifiable_code": codeSchema}, "verifiable_code"),
			responses: []response{noContent("Bound."), reauthRequired,
				tooMany("The code has had all its tries. " + wrongPasswords), unsupported}},
		"PUT /user/password": {id: "changePassword", tag: "me", security: userToken, summary: "Change the password",
			description: "old_password is required when the account has a password. Setting a first password (an account that signs in by " +
				"code or WeChat) needs no old_password;" + reauthNote + "verifiable_code, a code sent to the account's phone (else e-mail). " +
				"The account's phone and e-mail are told of a first password.",
			body: formProps(S{"old_password": str(), "password": str(), "password_confirmation": str(), "verifiable_code": codeSchema},
				"password", "password_confirmation"),
			responses: []response{noContent("Changed; every older token stops working."), reauthRequired,
				tooMany(wrongPasswords + " Or the code has had all its tries."), unsupported}},
		"GET /user/sessions": {id: "listMySessions", tag: "me", security: userToken, summary: "The caller's sessions (logins), newest first",
			description: "Each login (password, code, WeChat, registration, the MinApp SDK's) is a session until it is ended, its refresh window " +
				"passes or the password changes. The current one is marked. At most 100.",
			responses: []response{ok("The sessions.", arrayOf(ref("Session")))}},
		"DELETE /user/sessions/{session}": {id: "endMySession", tag: "me", security: userToken, summary: "End one of the caller's sessions",
			description: "Every token of that login is refused from now on, on every replica (ending the current one is a logout).",
			responses:   []response{noContent("Ended."), endUserError(http.StatusNotFound, "The caller has no such session (or it ended already).")}},
		"DELETE /user/phone":   unbind("unbindPhone", "phone"),
		"DELETE /user/email":   unbind("unbindEmail", "e-mail"),
		"GET /user/followings": userList("listMyFollowings", "Whom the caller follows", userToken),
		"GET /user/followers":  userList("listMyFollowers", "Who follows the caller", userToken),
		"PUT /user/followings/{user}": {id: "follow", tag: "me", security: userToken, summary: "Follow a user",
			responses: []response{noContent("Following (also when already)."), endUserError(http.StatusNotFound, "No such user.")}},
		"DELETE /user/followings/{user}": {id: "unfollow", tag: "me", security: userToken, summary: "Stop following a user",
			responses: []response{noContent("Not following (also when not before)."), endUserError(http.StatusNotFound, "No such user.")}},

		"GET /plus-pay/orders": orders("listWalletOrders", "new_wallet"),
		"GET /currency/orders": orders("listCurrencyOrders", "currency"),
		"POST /plus-pay/transfer": {id: "transfer", tag: "wallets", security: userToken, summary: "Send new_wallet money to another user",
			params: []param{{name: "Idempotency-Key", in: "header", schema: with(str(), "minLength", 1, "maxLength", 128),
				desc: "The same key again answers the first answer and moves nothing."}},
			body: formProps(S{"user": intOrString, "amount": intOrString, "title": str()}, "user", "amount"),
			responses: []response{
				{status: http.StatusCreated, desc: "Moved.", schema: object(S{"message": str(), "order": ref("Order")}, "message", "order"), headers: []string{"Idempotent-Replayed"}},
				endUserError(http.StatusNotFound, "No such receiver."),
				endUserError(http.StatusConflict, "The same key is still in progress, or was used for another request."),
				unsupported}},

		"POST /auth/wechat": {id: "loginWeChat", tag: "wechat", summary: "Log in with a wx.login code",
			body: formProps(S{"code": str()}, "code"),
			responses: []response{
				created("A new user was created; its token (created: true).", ref("LoginToken")),
				ok("A known user's token.", ref("LoginToken")),
				endUserError(http.StatusForbidden, "WeChat refuses this user (errcode 40226), or the user is banned (the message tells the reason)."),
				endUserError(http.StatusNotFound, "No user is linked and spec.wechat.createUsers is false."),
				tooMany("WeChat's rate limit (errcode 45011), or this address has had too many failed logins, bogus codes included (docs/plus.md, Attempt limits)."), unsupported}},
		"PUT /user/wechat": {id: "linkWeChat", tag: "wechat", security: userToken, summary: "Link the caller to the WeChat account of a wx.login code",
			description: "Linking adds a way into the account." + reauthNote + "password, or verifiable_code, a code sent to the account's " +
				"phone (else e-mail); WeChat is not called without it. The account's phone and e-mail are told.",
			body: formProps(S{"code": str(), "password": str(), "verifiable_code": codeSchema}, "code"),
			responses: []response{noContent("Linked."), reauthRequired,
				endUserError(http.StatusConflict, "The WeChat account is another user's, or the caller has another one; conflict names it."),
				tooMany("WeChat's rate limit. " + wrongPasswords), unsupported}},
		"DELETE /user/wechat": {id: "unlinkWeChat", tag: "wechat", security: userToken, summary: "Unlink WeChat (needs another way in)",
			body:      formProps(S{"password": str(), "verifiable_code": codeSchema}),
			responses: []response{noContent("Unlinked."), tooMany(wrongPasswords), unsupported}},
		"POST /user/wechat/phone": {id: "bindWeChatPhone", tag: "wechat", security: userToken, summary: "Bind the phone of a getPhoneNumber code",
			description: "A new phone is a way into the account (codes, password resets)." + reauthNote + "password, or verifiable_code, " +
				"a code sent to the account's phone (else e-mail); WeChat is not called without it. The previous phone and e-mail are told.",
			body: formProps(S{"code": str(), "password": str(), "verifiable_code": codeSchema}, "code"),
			responses: []response{ok("Bound.", object(S{"phone": str(), "phone_verified": enum(true)}, "phone", "phone_verified")), reauthRequired,
				endUserError(http.StatusConflict, "Another user holds the phone."), tooMany("WeChat's rate limit. " + wrongPasswords), unsupported}},
		"PUT /user/wechat/profile": {id: "setWeChatProfile", tag: "wechat", security: userToken, summary: "Set the profile from wx.getUserInfo's encrypted data",
			description: "Takes nickname, avatar, gender, city, province, country and language; never an identity (openid and unionid come from " +
				"jscode2session only). Data that does not decrypt to the caller's profile gets one answer whatever the reason. " +
				"At most 10 tries per user and hour.",
			body:      formProps(S{"encryptedData": str(), "iv": str()}, "encryptedData", "iv"),
			responses: []response{noContent("Set."), tooMany("Too many tries for this user this hour."), unsupported}},

		"GET /openapi.json": {id: "getEndUserOpenAPI", tag: "meta", summary: "This document",
			responses: []response{ok("The OpenAPI 3.1 document.", ref("OpenAPIDocument"))}},
	}
	// Every WeChat call can find WeChat busy or away.
	for key, op := range ops {
		if op.tag == "wechat" {
			op.responses = append(op.responses, endUserError(http.StatusServiceUnavailable, "The user store or WeChat is unavailable; retry after Retry-After seconds.", "Retry-After"))
			ops[key] = op
		}
	}
	return ops
}
