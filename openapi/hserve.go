package openapi

import (
	"maps"
	"net/http"
)

func hserveInfo() S {
	return S{
		"title":   "userve MinApp SDK API (minapp-sdk's /hserve/ user routes)",
		"version": Version,
		"description": "The user and auth routes MinApp's client SDK (minapp-sdk 3.23.6) calls, for a tenant with spec.api.hserve. " +
			"Every request carries X-Hydrogen-Client-ID (the tenant's clientID); signed-in calls carry Authorization: Hydrogen-r1 <token>. " +
			"Errors are {\"status\":\"error\",\"error_msg\":...}; the SDK's HError code is the status. " +
			"Each path also answers CORS preflights (OPTIONS) for spec.api.hserve.allowedOrigins. See docs/hserve.md.",
	}
}

// hserveSchemas are the named schemas of the SDK dialect.
func (c *components) hserveSchemas() S {
	return S{
		"Error":      managementErrorSchema(),
		"User":       c.hserveUser(),
		"UserUpdate": c.hserveUserUpdate(),
		"Session":    hserveSession(),
		"Status":     object(S{"status": enum("ok")}, "status"),

		"OpenAPIDocument": openAPIDocument(),
	}
}

// hserveUser is the SDK's user object: MinApp's built-in fields, the
// account's _ fields (null when unset) and the tenant's custom fields.
func (c *components) hserveUser() S {
	props := S{}
	maps.Copy(props, c.customValues(false)["properties"].(S))
	builtins := S{
		"id":              id(),
		"nickname":        str(),
		"avatar":          str(),
		"gender":          with(integer(), "enum", []int{0, 1, 2}, "description", "0 unknown, 1 male, 2 female"),
		"city":            str(),
		"province":        str(),
		"country":         str(),
		"language":        str(),
		"openid":          nullable(str()),
		"unionid":         nullable(str()),
		"is_authorized":   with(boolean(), "description", "The user has logged in with WeChat."),
		"created_at":      unix(),
		"updated_at":      unix(),
		"_username":       nullable(str()),
		"_email":          nullable(str()),
		"_phone":          nullable(str()),
		"_email_verified": boolean(),
		"_phone_verified": boolean(),
		"_anonymous":      with(boolean(), "description", "Made by anonymous login: no account."),
	}
	required := c.customNames(false)
	for name := range builtins {
		required = append(required, name)
	}
	maps.Copy(props, builtins)
	sortStrings(required)
	return with(object(props, required...), "example", S{
		"id": 36619758, "nickname": "", "avatar": "", "gender": 0, "city": "", "province": "", "country": "", "language": "",
		"openid": nil, "unionid": nil, "is_authorized": false, "created_at": 1504504504, "updated_at": 1504504504,
		"_username": "alice", "_email": nil, "_phone": nil, "_email_verified": false, "_phone_verified": false, "_anonymous": false,
	})
}

// hserveUserUpdate is currentUser.set(...).update()'s body: the built-ins a
// user may write and the custom fields (null unsets one).
func (c *components) hserveUserUpdate() S {
	props := S{
		"nickname": str(), "avatar": str(), "city": str(), "province": str(), "country": str(), "language": str(),
		"gender": with(integer(), "enum", []int{0, 1, 2}),
	}
	maps.Copy(props, c.customValues(false)["properties"].(S))
	return with(object(props), "description", "Writable built-ins (nickname, avatar, gender, city, province, country, language) and custom fields; null unsets a custom field.")
}

func hserveSession() S {
	return object(S{
		"token":      str(),
		"expires_in": with(integer(), "description", "Seconds the token is valid (spec.api.plus.tokenTTL)."),
		"user_id":    id(),
		"openid":     nullable(str()),
		"unionid":    nullable(str()),
		"user_info":  ref("User"),
	}, "token", "expires_in", "user_id", "openid", "unionid", "user_info")
}

func hserveError(status int, desc string, headers ...string) response {
	return response{status: status, desc: desc, schema: ref("Error"), headers: headers}
}

// hserveOperations are the SDK routes by "METHOD /path" under /hserve.
func hserveOperations(c *components) map[string]operation {
	session := func(desc string) response { return created(desc, ref("Session")) }
	throttled := func(desc string) response { return hserveError(http.StatusTooManyRequests, desc, "Retry-After") }
	statusOK := ok("Done.", ref("Status"))
	phone := with(str(), "description", "5-20 digits, optional leading +")
	code := with(str(), "pattern", `^[0-9]{4,6}$`)
	register := func(kind string, schema S) operation {
		return operation{id: "registerBy" + title(kind), tag: "auth", security: clientOnly, summary: "Register with a " + kind + " and a password (auth.register)",
			body: jsonBody(object(S{kind: schema, "password": str()}, kind, "password")),
			responses: []response{session("The new user's session."),
				throttled("Too many users created from this address this hour.")}}
	}
	login := func(kind string, schema S) operation {
		return operation{id: "loginBy" + title(kind), tag: "auth", security: clientOnly, summary: "Log in with a " + kind + " and a password (auth.login)",
			body: jsonBody(object(S{kind: schema, "password": str()}, kind, "password")),
			responses: []response{session("A session."), bannedResponse,
				hserveError(http.StatusUnauthorized, "Wrong credentials (alike whether or not the account exists), or a wrong client ID.", "WWW-Authenticate"),
				throttled("Too many failed logins for this account or from this address (the limits of /api/v2/auth/login).")}}
	}
	ops := map[string]operation{
		"POST /v2.1/register/username/": register("username", with(str(), "description", "2-12 display units; letters, digits, _; not starting with a digit")),
		"POST /v2.1/register/email/":    register("email", with(str(), "format", "email")),
		"POST /v2.1/register/phone/":    register("phone", phone),
		"POST /v2.1/login/username/":    login("username", str()),
		"POST /v2.1/login/email/":       login("email", str()),
		"POST /v2.1/login/phone/":       login("phone", phone),
		"POST /v2.1/login/sms/": {id: "loginBySMS", tag: "auth", security: clientOnly, summary: "Log in with a code sent by SMS (auth.loginWithSmsVerificationCode)",
			body: jsonBody(object(S{"phone": phone, "code": code, "create_user": boolean()}, "phone", "code")),
			responses: []response{session("A session (a new user with create_user)."),
				hserveError(http.StatusForbidden, "The number is on an account that has not verified it, or the user is banned (the message tells the reason)."),
				hserveError(http.StatusNotFound, "No user has the number and create_user is false."),
				throttled("Too many failed attempts, or the code has had all its tries.")}},
		"POST /v2.0/login/anonymous/": {id: "loginAnonymous", tag: "auth", security: clientOnly, summary: "A new anonymous user's session (auth.anonymousLogin)",
			body:      &body{schema: object(S{}), required: false},
			responses: []response{session("The anonymous user's session."), throttled("Too many users created from this address this hour.")}},
		"POST /v2.0/session/destroy/": {id: "logout", tag: "auth", security: clientToken, summary: "Revoke the caller's token (auth.logout)",
			body:      &body{schema: object(S{}), required: false},
			responses: []response{noContent("Logged out, in every dialect.")}},
		"POST /v2.2/sms-verification-code/": {id: "sendSmsCode", tag: "sms", security: clientOnly, summary: "Send a code by SMS (BaaS.sendSmsCode)",
			body: jsonBody(object(S{"phone": phone, "signature_id": with(anyValue(), "description", "Accepted and ignored."),
				"user_id": with(anyValue(), "description", "Accepted and ignored.")}, "phone")),
			responses: []response{statusOK, throttled("A code went to this number less than a minute ago, or a code budget is spent."),
				hserveError(http.StatusServiceUnavailable, "The code could not be delivered, or the store is unavailable.", "Retry-After")}},
		"POST /v1.8/sms-verification-code/verify/": {id: "verifySmsCode", tag: "sms", security: clientOnly, summary: "Check (and use) a code sent by SMS (BaaS.verifySmsCode)",
			body:      jsonBody(object(S{"phone": phone, "code": code, "user_id": anyValue()}, "phone", "code")),
			responses: []response{statusOK, throttled("Too many failed attempts from this address, or the code has had all its tries.")}},
		"GET /v2.5/user/info/{user_id}/": {id: "getUser", tag: "users", security: clientToken, summary: "The caller's user object (auth.getCurrentUser)",
			responses: []response{ok("The caller.", ref("User")), hserveError(http.StatusForbidden, "Another user's id: only one's own profile is served.")}},
		"GET /v2.5/user/info/": {id: "getMe", tag: "users", security: clientToken, summary: "The caller's user object (BaaS.getUserInfo())",
			responses: []response{ok("The caller.", ref("User"))}},
		"PUT /v2.5/user/info/": {id: "updateMe", tag: "users", security: clientToken, summary: "Change the caller's fields (currentUser.set(...).update())",
			body: jsonBody(ref("UserUpdate")), responses: []response{ok("The caller, changed.", ref("User"))}},
		"PUT /v2.2/user/account/": {id: "updateAccount", tag: "users", security: clientToken, summary: "Change username, e-mail, phone or password (updatePassword, setEmail, setUsername, setMobilePhone, setAccount)",
			description: "A new password needs the current one (password) when the user has one, and ends every older token. " +
				"A new name, e-mail, phone or first password needs the current password or a login within spec.api.plus.reauthWindow; the old contacts are told. A new e-mail or phone is unverified.",
			body: jsonBody(object(S{"username": str(), "email": with(str(), "format", "email"), "phone": phone, "password": str(), "new_password": str()})),
			responses: []response{ok("The caller, changed.", ref("User")),
				hserveError(http.StatusForbidden, "An anonymous user, or no proof of identity (password or a recent login)."),
				throttled("Too many wrong passwords for this account.")}},
		"POST /v2.1/sms-phone-verification/": {id: "verifyPhone", tag: "users", security: clientToken, summary: "Verify the caller's phone with a code sent to it (verifyMobilePhone)",
			body:      jsonBody(object(S{"code": code}, "code")),
			responses: []response{statusOK, throttled("The code has had all its tries.")}},

		"GET /openapi.json": {id: "openAPI", tag: "openapi", summary: "This document, with the tenant's custom fields",
			description: "Public, like /api/v2/openapi.json; needs no client ID.",
			responses:   []response{ok("The document.", ref("OpenAPIDocument"))}},
		"POST /v2.0/user/email-verify/": {id: "verifyEmail", tag: "users", security: clientToken, summary: "Send a code to the caller's e-mail (requestEmailVerification), or verify it with {code}",
			body:      &body{schema: object(S{"code": code}), required: false},
			responses: []response{statusOK, hserveError(http.StatusForbidden, "An anonymous user."), throttled("A code budget is spent, or the code has had all its tries.")}},
		"POST /v2.0/user/password/reset/": {id: "requestPasswordReset", tag: "auth", security: clientOnly, summary: "Send a password-reset code to an e-mail (auth.requestPasswordReset)",
			description: "The same answer whether or not a user has the address. The code sets a new password with PUT /api/v2/user/retrieve-password.",
			body:        jsonBody(object(S{"email": with(str(), "format", "email")}, "email")),
			responses:   []response{statusOK, throttled("A code budget is spent."), hserveError(http.StatusServiceUnavailable, "The code could not be delivered, or the store is unavailable.", "Retry-After")}},
		"POST /v2.5/idp/wechat/silent-login/": {id: "wechatSilentLogin", tag: "wechat", security: clientOnly, summary: "Log in with a wx.login code (auth.silentLogin, loginWithWechat)",
			body: jsonBody(object(S{"code": str(), "create_user": boolean(), "login_with_unionid": boolean()}, "code")),
			responses: []response{ok("A known WeChat user's session.", ref("Session")), session("A new user's session."),
				hserveError(http.StatusNotFound, "No user is linked to this WeChat account and none may be created."),
				hserveError(http.StatusForbidden, "WeChat refuses this user (40226), or the user is banned (the message tells the reason)."),
				throttled("WeChat's rate limit (45011)."),
				hserveError(http.StatusServiceUnavailable, "WeChat or the store is unavailable.", "Retry-After")}},
		"POST /v2.4/idp/wechat/user-associate/": {id: "wechatAssociate", tag: "wechat", security: clientToken, summary: "Link the caller to a WeChat account (linkWechat)",
			body: jsonBody(object(S{"code": str(), "associate_with_unionid": boolean()}, "code")),
			responses: []response{ok("The caller, linked.", ref("User")),
				hserveError(http.StatusForbidden, "An anonymous user, no recent login, or a user WeChat refuses."),
				hserveError(http.StatusConflict, "The WeChat account is another user's, or the caller has another one."),
				throttled("WeChat's rate limit (45011)."),
				hserveError(http.StatusServiceUnavailable, "WeChat or the store is unavailable.", "Retry-After")}},
		"POST /v2.7/idp/wechat/phone-login/": {id: "wechatPhoneLogin", tag: "wechat", security: clientOnly, summary: "Log in with a getPhoneNumber button's code (loginWithWechat with the button's event)",
			description: "The number comes from WeChat (phone_code), never from the client; encryptedData and iv are accepted and not used.",
			body:        jsonBody(object(S{"phone_code": str(), "code": str(), "create_user": boolean(), "encryptedData": str(), "iv": str()}, "phone_code")),
			responses: []response{ok("A known user's session.", ref("Session")), session("A new user's session."),
				hserveError(http.StatusNotFound, "No user has the number and create_user is false."),
				hserveError(http.StatusForbidden, "The number is on an account that has not verified it, WeChat refuses this user, or the user is banned."),
				throttled("WeChat's rate limit (45011)."),
				hserveError(http.StatusServiceUnavailable, "WeChat or the store is unavailable.", "Retry-After")}},
	}
	// operationIds are unique across the documents (client generators
	// name methods after them): this dialect's carry an "sdk" prefix.
	for key, op := range ops {
		op.id = "sdk" + title(op.id)
		ops[key] = op
	}
	return ops
}

// preflightOperation answers a CORS preflight on any /hserve/ path.
func preflightOperation(path string) operation {
	return operation{id: "preflight" + operationSuffix(path), tag: "cors", summary: "CORS preflight",
		responses: []response{
			{status: http.StatusNoContent, desc: "The origin is in spec.api.hserve.allowedOrigins.",
				headers: []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"}},
			hserveError(http.StatusForbidden, "The origin is not allowed; no Access-Control-Allow-Origin."),
		}}
}
