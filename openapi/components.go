package openapi

import (
	"maps"

	"userve.dev/userve/api/v1alpha1"
)

// components holds the named schemas of one tenant's documents; the
// profile schemas carry its custom fields.
type components struct {
	custom []v1alpha1.CustomField
}

func newComponents(spec v1alpha1.UserServiceSpec) *components {
	return &components{custom: spec.Profile.CustomFields}
}

// schemas are the named schemas of dialect d.
func (c *components) schemas(d Dialect) S {
	if d == HServe {
		return c.hserveSchemas()
	}
	if d == Management {
		return S{
			"Error":             managementErrorSchema(),
			"Profile":           c.profile(),
			"ProfileCreate":     c.profileCreate(),
			"ProfileUpdate":     c.profileUpdate(),
			"ListMeta":          listMeta(),
			"ProfileList":       list("Profile"),
			"Group":             group(),
			"GroupList":         list("Group"),
			"Transaction":       transaction(),
			"TransactionList":   list("Transaction"),
			"MembershipChange":  membershipChange(),
			"AuditEntry":        auditEntry(),
			"AuditList":         list("AuditEntry"),
			"MergeResult":       mergeResult(),
			"ImportResult":      importResult(),
			"ExportRecord":      exportRecord(c),
			"OpenAPIDocument":   openAPIDocument(),
			"CustomFieldValues": c.customValues(false),
			"Session":           session(unix(), nil),
			"SessionList":       list("Session"),
			"Login":             loginRecord(),
			"LoginList":         list("Login"),
			"UserOverview":      userOverview(),
		}
	}
	return S{
		"Error":      endUserErrorSchema(),
		"User":       publicUser(),
		"Me":         me(),
		"LoginToken": loginToken(),
		"Order":      order(),
		"SelfExport": selfExport(c),
		"Session": session(with(str(), "description", "UTC, 2006-01-02 15:04:05"),
			S{"current": with(boolean(), "description", "The login of this request's token.")}),
		"OpenAPIDocument": openAPIDocument(),
	}
}

// customField is the schema of one custom field's value.
func customField(f v1alpha1.CustomField) S {
	var s S
	switch f.Type {
	case v1alpha1.FieldString:
		s = str()
		if f.MaxLength != nil {
			s["maxLength"] = *f.MaxLength
		}
	case v1alpha1.FieldInteger:
		s = integer()
	case v1alpha1.FieldNumber:
		s = number()
	case v1alpha1.FieldBoolean:
		s = boolean()
	case v1alpha1.FieldArray:
		s = arrayOf(anyValue())
		if f.MaxLength != nil {
			s["maxItems"] = *f.MaxLength
		}
	case v1alpha1.FieldObject:
		s = S{"type": "object"}
	case v1alpha1.FieldDate:
		s = with(str(), "format", "date-time", "description", "RFC 3339; answered in UTC at millisecond precision")
	default:
		s = anyValue()
	}
	s["x-userve-custom-field"] = string(f.Type)
	return s
}

// customValues are the tenant's custom fields; null unsets one in updates
// and shows an unset one in answers.
func (c *components) customValues(createOnly bool) S {
	props := S{}
	for _, f := range c.custom {
		s := customField(f)
		if !createOnly {
			s = nullable(s)
		}
		props[f.Name] = s
	}
	return S{"type": "object", "properties": props, "additionalProperties": false,
		"description": "The tenant's custom profile fields (spec.profile.customFields)."}
}

func (c *components) customNames(required bool) []string {
	var names []string
	for _, f := range c.custom {
		if !required || f.Required {
			names = append(names, f.Name)
		}
	}
	return names
}

func managementErrorSchema() S {
	return with(object(S{"status": enum("error"), "error_msg": str()}, "status", "error_msg"),
		"example", S{"status": "error", "error_msg": "limit: must be at least 1"})
}

func endUserErrorSchema() S {
	return with(object(S{
		"message":  str(),
		"errors":   S{"type": "object", "additionalProperties": arrayOf(str()), "description": "Problems by field name."},
		"conflict": with(enum("openid", "unionid", "phone"), "description", "On a 409 from WeChat linking: the identity held by another user."),
	}, "message"), "example", S{"message": "name is already taken", "errors": S{"name": []string{"name is already taken"}}})
}

// builtinProfile are the profile's built-in fields as answered.
func builtinProfile() S {
	return S{
		"user_id":         id(),
		"nickname":        str(),
		"avatar":          str(),
		"gender":          with(integer(), "enum", []int{0, 1, 2}, "description", "0 unknown, 1 male, 2 female"),
		"city":            str(),
		"province":        str(),
		"country":         str(),
		"language":        str(),
		"openid":          nullable(str()),
		"unionid":         nullable(str()),
		"user_group":      arrayOf(id()),
		"created_at":      unix(),
		"updated_at":      unix(),
		"_username":       str(),
		"_email":          with(str(), "format", "email"),
		"_email_verified": boolean(),
		"_phone":          str(),
		"_phone_verified": boolean(),
		"_banned":         with(boolean(), "description", "A ban holds now: the user's tokens and logins are refused (PUT .../ban/)."),
		"_ban_reason":     with(str(), "description", "When banned: the reason the user is shown."),
		"_ban_expires_at": with(nullable(unix()), "description", "When banned: when the ban lifts by itself; null: never."),
	}
}

// profile is a profile as answered: every built-in field (the _ ones only
// when set), every custom field (null when unset).
func (c *components) profile() S {
	props := builtinProfile()
	maps.Copy(props, c.customValues(false)["properties"].(S))
	required := []string{"user_id", "nickname", "avatar", "gender", "city", "province", "country",
		"language", "openid", "unionid", "user_group", "created_at", "updated_at"}
	required = append(required, c.customNames(false)...)
	return with(object(props, required...), "example", S{
		"avatar": "https://media.ifanrusercontent.com/media/tavatar/55/c3/55c3dbebcc61891be10d29ded808c84a01dcf864.jpg",
		"city":   "Guangzhou", "country": "China", "created_at": 1504504504, "updated_at": 1504504504,
		"gender": 1, "language": "", "nickname": "PCG", "openid": "onzns0KsLKFyg3-VcW0GwTE652_k",
		"unionid": "onzns0KsLKFyg3-VcW0GwTE652_k", "province": "Guangdong", "user_group": []int{137}, "user_id": 36619758,
	})
}

func (c *components) profileCreate() S {
	props := builtinProfile()
	for _, name := range []string{"user_id", "created_at", "updated_at", "_banned", "_ban_reason", "_ban_expires_at"} {
		delete(props, name)
	}
	props["openid"], props["unionid"] = str(), str()
	props["_phone"] = with(str(), "pattern", `^\+?[0-9]{5,20}$`)
	maps.Copy(props, c.customValues(true)["properties"].(S))
	return object(props, c.customNames(true)...)
}

func (c *components) profileUpdate() S {
	return with(c.customValues(false), "description", "Custom fields only; null unsets one (refused for required fields).")
}

func listMeta() S {
	return object(S{
		"limit":       integer(),
		"offset":      integer(),
		"next":        nullable(with(str(), "description", "The next page's path and query")),
		"previous":    nullable(str()),
		"total_count": integer(),
	}, "limit", "offset", "next", "previous")
}

func list(item string) S {
	return object(S{"meta": ref("ListMeta"), "objects": arrayOf(ref(item))}, "meta", "objects")
}

func group() S {
	return with(object(S{"id": id(), "name": str(), "members": integer(), "parent": nullable(id())}, "id", "name", "members", "parent"),
		"example", S{"id": 1, "name": "vip", "members": 0, "parent": nil})
}

func transaction() S {
	return object(S{
		"id":              id(),
		"kind":            enum("adjust", "transfer"),
		"user_id":         id(),
		"to_user_id":      id(),
		"account":         enum("wallet", "new_wallet", "currency"),
		"amount":          integer(),
		"title":           str(),
		"idempotency_key": with(nullable(str()), "description", "null for an entry made without a key"),
		"state":           enum("pending", "debited", "completed", "refused", "refunded"),
		"created_at":      unix(),
		"updated_at":      unix(),
	}, "id", "kind", "user_id", "account", "amount", "title", "idempotency_key", "state", "created_at", "updated_at")
}

func auditEntry() S {
	anyValue := S{"description": "The field's value; null when absent."}
	return object(S{
		"id":        with(str(), "pattern", "^[0-9a-f]{24}$"),
		"at":        unix(),
		"admin":     with(str(), "description", "The admin token's name (admin-N for an unnamed entry)."),
		"action":    with(str(), "description", "The operation id of the route, e.g. updateProfileV20."),
		"method":    str(),
		"path":      str(),
		"query":     with(str(), "description", "The request's query string (at most 1 KiB, then truncated), e.g. an export's where or an import's format."),
		"user_ids":  arrayOf(id()),
		"remote":    str(),
		"via":       with(enum("api", "console"), "description", "api: a request with the admin's bearer token; console: an action in the tenant console (docs/console.md) by the admin signed in there."),
		"state":     with(enum("pending", "done", "failed"), "description", "pending: written before the action, outcome not recorded (docs/server.md)."),
		"status":    with(nullable(integer()), "description", "The HTTP status answered; null while pending."),
		"changes":   arrayOf(object(S{"field": str(), "before": anyValue, "after": anyValue}, "field", "before", "after")),
		"truncated": boolean(),
	}, "id", "at", "admin", "action", "method", "path", "query", "user_ids", "remote", "via", "state", "status", "changes", "truncated")
}

func membershipChange() S {
	return object(S{
		"op":     enum("add", "remove"),
		"path":   enum("/membership"),
		"users":  with(arrayOf(id()), "minItems", 1),
		"groups": with(arrayOf(id()), "minItems", 1),
	}, "op", "path", "users", "groups")
}

func mergeResult() S {
	return object(S{
		"from":   id(),
		"into":   id(),
		"status": str(),
		"moved": openObject(S{
			"identities": arrayOf(str()),
			"user_group": arrayOf(id()),
			"balances":   nullable(S{"type": "object", "additionalProperties": integer()}),
			"profile":    nullable(S{"type": "object"}),
		}, "identities", "user_group"),
		"transactions": nullable(arrayOf(id())),
		"user":         ref("Profile"),
	}, "from", "into", "status", "moved", "user")
}

func importResult() S {
	return object(S{
		"created": integer(), "updated": integer(), "skipped": integer(), "errors": integer(),
		"weak_hashes": with(integer(), "description", "Created or updated records whose password hash is below OWASP's minimums "+
			"(bcrypt cost < 10, argon2id under OWASP's configurations, pbkdf2_sha256 < 600,000 iterations): kept, and replaced by the tenant's bcrypt at the user's first login."),
		"dry_run": boolean(),
		"results": arrayOf(object(S{
			"index":   integer(),
			"status":  enum("created", "updated", "skipped", "error"),
			"user_id": id(),
			"error":   str(),
		}, "index", "status")),
	}, "created", "updated", "skipped", "errors", "weak_hashes", "results")
}

// exportRecord is one line of the export: the profile with the end-user
// fields, groups, followings and balances (userve's import format, in
// docs/migration.md). A stream cut short by the store ends with an _error
// line instead.
func exportRecord(c *components) S {
	props := c.profile()["properties"].(S)
	props = maps.Clone(props)
	maps.Copy(props, S{
		"_bio":           str(),
		"_location":      str(),
		"_bg":            str(),
		"_password_hash": with(str(), "description", "Only with include=password_hash, and only when the user has a password."),
		"groups":         arrayOf(object(S{"id": id(), "name": str()}, "id", "name")),
		"followings":     arrayOf(id()),
		"wallet":         object(S{"wallet": integer(), "new_wallet": integer(), "currency": integer()}, "wallet", "new_wallet", "currency"),
	})
	record := object(props, append(c.profile()["required"].([]string), "_bio", "_location", "_bg", "groups", "followings", "wallet")...)
	stopped := object(S{"_error": str()}, "_error")
	return oneOf(record, with(stopped, "description", "The last line of an export the store cut short."))
}

func openAPIDocument() S {
	return S{"type": "object", "required": []string{"openapi", "paths"}, "description": "This document."}
}

// publicUser is the end-user dialect's user object.
func publicUser() S {
	return object(publicUserProps(), "id", "name", "bio", "sex", "location", "created_at", "updated_at", "avatar", "bg", "verified", "extra")
}

func publicUserProps() S {
	return S{
		"id":         id(),
		"name":       str(),
		"bio":        str(),
		"sex":        with(integer(), "description", "0 unknown, 1 male, 2 female"),
		"location":   str(),
		"created_at": dateTime(),
		"updated_at": dateTime(),
		"following":  with(boolean(), "description", "Whether the caller (or ?following=) follows the user; with a token or the parameter only."),
		"follower":   with(boolean(), "description", "Whether the user follows the caller (or ?follower=)."),
		"avatar":     nullable(str()),
		"bg":         nullable(str()),
		"verified":   with(S{"type": "null"}, "description", "Always null: userve has no certification."),
		"extra": object(S{
			"user_id": id(), "likes_count": integer(), "comments_count": integer(), "followers_count": integer(),
			"followings_count": integer(), "updated_at": dateTime(), "feeds_count": integer(),
		}, "user_id", "likes_count", "comments_count", "followers_count", "followings_count", "updated_at", "feeds_count"),
	}
}

func me() S {
	props := publicUserProps()
	maps.Copy(props, S{
		"phone": nullable(str()),
		"email": nullable(str()),
		"wallet": object(S{"id": id(), "user_id": id(), "balance": integer(), "created_at": dateTime(), "updated_at": dateTime(), "deleted_at": nullable(dateTime())},
			"id", "user_id", "balance", "created_at", "updated_at", "deleted_at"),
		"new_wallet": object(S{"owner_id": id(), "balance": integer(), "total_income": integer(), "total_expenses": integer(), "created_at": dateTime(), "updated_at": dateTime()},
			"owner_id", "balance", "total_income", "total_expenses", "created_at", "updated_at"),
		"currency": object(S{"owner_id": id(), "type": integer(), "sum": integer(), "created_at": dateTime(), "updated_at": dateTime()},
			"owner_id", "type", "sum", "created_at", "updated_at"),
	})
	return object(props, "id", "name", "bio", "sex", "location", "created_at", "updated_at", "avatar", "bg", "verified", "extra",
		"phone", "email", "wallet", "new_wallet", "currency")
}

func loginToken() S {
	return with(object(S{
		"access_token": str(),
		"token_type":   enum("Bearer"),
		"expires_in":   with(integer(), "description", "Minutes this token lives."),
		"refresh_ttl":  with(integer(), "description", "Minutes left of the login's refresh window."),
		"created":      with(boolean(), "description", "WeChat login only: whether the user was created now."),
	}, "access_token", "token_type", "expires_in", "refresh_ttl"),
		"example", S{"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.e30.x", "token_type": "Bearer", "expires_in": 60, "refresh_ttl": 20160})
}

func order() S {
	return object(S{
		"id":          id(),
		"owner_id":    id(),
		"target_type": enum("user", "system"),
		"target_id":   integer(),
		"title":       str(),
		"body":        str(),
		"type":        with(enum(1, -1), "description", "1 income, -1 expense for the caller"),
		"currency":    integer(),
		"amount":      integer(),
		"state":       with(enum(1, 0, -1), "description", "1 done, 0 in progress, -1 refunded"),
		"created_at":  dateTime(),
		"updated_at":  dateTime(),
	}, "id", "owner_id", "target_type", "target_id", "title", "body", "type", "amount", "state", "created_at", "updated_at")
}

func selfExport(c *components) S {
	return object(S{
		"profile": ref("Me"),
		"identities": object(S{"openid": nullable(str()), "unionid": nullable(str()), "name": nullable(str()), "email": nullable(str()), "phone": nullable(str())},
			"openid", "unionid", "name", "email", "phone"),
		"custom":     c.customValues(true),
		"groups":     arrayOf(object(S{"id": id(), "name": str()}, "id", "name")),
		"followings": arrayOf(id()),
		"followers":  arrayOf(id()),
		"ledger":     arrayOf(ref("Order")),
		"truncated":  with(boolean(), "description", "true when the ledger was cut at its cap"),
	}, "profile", "identities", "custom", "groups", "followings", "followers", "ledger", "truncated")
}

// session is one login (a token family) as both dialects answer it; times
// in the dialect's format.
func session(timeSchema, extra S) S {
	props := S{
		"id":           with(str(), "description", "The session's id: its login's token family (claim fam)."),
		"api":          with(enum("v2", "hserve"), "description", "Logged in through /api/v2 or the MinApp SDK (/hserve)."),
		"method":       enum("password", "code", "wechat", "register", "anonymous"),
		"address":      with(str(), "description", "The client's address at login."),
		"user_agent":   with(str(), "description", "The User-Agent at login (at most 512 bytes)."),
		"started_at":   timeSchema,
		"last_used_at": with(timeSchema, "description", "The last request with one of its tokens, to the minute."),
		"expires_at":   with(timeSchema, "description", "Its refresh deadline: no token of it works after."),
	}
	required := []string{"id", "api", "method", "address", "user_agent", "started_at", "last_used_at", "expires_at"}
	for k, v := range extra {
		props[k] = v
		required = append(required, k)
	}
	return object(props, required...)
}

// loginRecord is one entry of a user's login history.
func userOverview() S {
	count := with(integer(), "minimum", 0)
	return object(S{
		"user_id": id(), "followers_count": count, "followings_count": count,
		"wallet": integer(), "new_wallet": integer(), "currency": integer(),
	}, "user_id", "followers_count", "followings_count", "wallet", "new_wallet", "currency")
}

func loginRecord() S {
	return object(S{
		"at":      unix(),
		"api":     enum("v2", "hserve"),
		"method":  enum("password", "code", "wechat", "register", "anonymous"),
		"address": with(str(), "description", "The client's address."),
		"result":  enum("ok", "wrong_password", "wrong_code", "throttled", "banned"),
	}, "at", "api", "method", "address", "result")
}
