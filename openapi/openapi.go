// Package openapi describes a tenant's dialects as OpenAPI 3.1 documents:
// the management API (MinApp's user module, under /userve/), the end-user
// API (ThinkSNS Plus v2, under /api/v2/) and the MinApp SDK API (under
// /hserve/).
//
// A document is built from the server's route table and the tenant's
// UserService spec: every route the router holds must have an operation
// here (Build fails otherwise), so a new route cannot ship undescribed, and
// the tenant's custom profile fields appear in its profile schemas with
// their types. The conformance package checks, in the server tests, that
// every request and answer matches the document the server serves.
package openapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"userve.dev/userve/api/v1alpha1"
)

// Dialect names one of the two documents.
type Dialect string

const (
	Management Dialect = "management"
	EndUser    Dialect = "enduser"
	HServe     Dialect = "hserve"
)

// Dialects are every document, in a stable order.
var Dialects = []Dialect{Management, EndUser, HServe}

// Path prefixes of the dialects. /oserve/ is an alias of /userve/ that the
// management document describes once, under /userve/.
const (
	ManagementPrefix = "/userve"
	ManagementAlias  = "/oserve"
	EndUserPrefix    = "/api/v2"
	HServePrefix     = "/hserve"
)

// ConsolePath is where the tenant console lives under both management
// prefixes (server/console). Its pages are HTML for browsers, not API: no
// document describes them, and the conformance checker leaves them alone.
const ConsolePath = "/console"

// IsConsolePath reports whether path is one of the console's.
func IsConsolePath(path string) bool {
	for _, prefix := range []string{ManagementPrefix, ManagementAlias} {
		if path == prefix+ConsolePath || strings.HasPrefix(path, prefix+ConsolePath+"/") {
			return true
		}
	}
	return false
}

// Route is one route of the server's table: a method and a path template in
// gorilla/mux's syntax, which is OpenAPI's ({name} segments).
type Route struct{ Method, Path string }

// Version is the documents' info.version: the API's version, which is the
// custom resource's.
const Version = "v1alpha1"

// security says what a route needs in Authorization.
type security int

const (
	public        security = iota
	adminToken             // a management token
	userToken              // an end-user access token
	optionalToken          // an end-user token if sent
	refreshToken           // an end-user token, expired or not
	clientOnly             // the SDK's client ID (X-Hydrogen-Client-ID)
	clientToken            // the SDK's client ID and a Hydrogen-r1 token
)

type param struct {
	name, in, desc string
	schema         S
	required       bool
}

type body struct {
	schema   S
	required bool
	media    []string // default application/json
	example  any
}

type response struct {
	status  int
	desc    string
	schema  S        // nil: no body
	media   string   // default application/json
	headers []string // response headers it carries (see headerSchemas)
	example any
}

type operation struct {
	id, summary, description string
	tag                      string
	security                 security
	params                   []param
	body                     *body
	responses                []response
}

// Build returns the document of dialect d for a tenant of spec, describing
// exactly the routes of the dialect in routes (others are ignored).
func Build(d Dialect, spec v1alpha1.UserServiceSpec, routes []Route) ([]byte, error) {
	var (
		prefix string
		ops    map[string]operation
		c      = newComponents(spec)
		info   S
	)
	switch d {
	case Management:
		prefix, ops, info = ManagementPrefix, managementOperations(c), managementInfo()
	case EndUser:
		prefix, ops, info = EndUserPrefix, endUserOperations(c), endUserInfo()
	case HServe:
		prefix, ops, info = HServePrefix, hserveOperations(c), hserveInfo()
	default:
		return nil, fmt.Errorf("unknown dialect %q", d)
	}
	paths := map[string]S{}
	var missing []string
	for _, rt := range routes {
		rel, ok := strings.CutPrefix(rt.Path, prefix)
		if !ok || !strings.HasPrefix(rel, "/") {
			continue
		}
		key := rt.Method + " " + rel
		op, ok := ops[key]
		if d == HServe && rt.Method == http.MethodOptions {
			op, ok = preflightOperation(rel), true
		}
		if !ok {
			missing = append(missing, key)
			continue
		}
		item := paths[rt.Path]
		if item == nil {
			item = S{}
			paths[rt.Path] = item
		}
		item[strings.ToLower(rt.Method)] = op.render(d, rt.Path)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("openapi: %s routes without a description: %s", d, strings.Join(missing, ", "))
	}
	doc := S{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info":              info,
		"servers":           []S{{"url": "/", "description": "the tenant's own URL"}},
		"paths":             paths,
		"components": S{
			"schemas":         c.schemas(d),
			"securitySchemes": securitySchemes(d),
		},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func securitySchemes(d Dialect) S {
	if d == HServe {
		return S{
			"clientID": S{"type": "apiKey", "in": "header", "name": "X-Hydrogen-Client-ID",
				"description": "The tenant's spec.api.hserve.clientID, as BaaS.init(clientID) sends it."},
			"hydrogenToken": S{"type": "apiKey", "in": "header", "name": "Authorization",
				"description": "Hydrogen-r1 <token>, the token of a login, registration or silent login."},
		}
	}
	if d == Management {
		return S{"adminToken": S{"type": "http", "scheme": "bearer",
			"description": "One of the tenant's admin tokens (USERVE_ADMIN_TOKENS; the operator keeps them in the Secret <name>-userve-admin)."}}
	}
	return S{"userToken": S{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
		"description": "An access token from POST /api/v2/auth/login, /users or /auth/wechat."}}
}

// render is the operation object of op on path.
func (op operation) render(d Dialect, path string) S {
	out := S{"operationId": op.id, "summary": op.summary, "tags": []string{op.tag}}
	if op.description != "" {
		out["description"] = op.description
	}
	switch op.security {
	case adminToken:
		out["security"] = []S{{"adminToken": []string{}}}
	case userToken, refreshToken:
		out["security"] = []S{{"userToken": []string{}}}
	case optionalToken:
		out["security"] = []S{{"userToken": []string{}}, {}}
	case clientOnly:
		out["security"] = []S{{"clientID": []string{}}}
	case clientToken:
		out["security"] = []S{{"clientID": []string{}, "hydrogenToken": []string{}}}
	}
	var params []S
	for _, name := range pathParams(path) {
		params = append(params, S{"name": name, "in": "path", "required": true, "schema": pathParamSchema(name)})
	}
	for _, p := range op.params {
		ps := S{"name": p.name, "in": p.in, "schema": p.schema}
		if p.desc != "" {
			ps["description"] = p.desc
		}
		if p.required {
			ps["required"] = true
		}
		params = append(params, ps)
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	if op.body != nil {
		media := op.body.media
		if len(media) == 0 {
			media = []string{"application/json"}
		}
		content := S{}
		for _, m := range media {
			mt := S{"schema": op.body.schema}
			if op.body.example != nil && m == "application/json" {
				mt["example"] = op.body.example
			}
			content[m] = mt
		}
		out["requestBody"] = S{"required": op.body.required, "content": content}
	}
	responses := S{}
	for _, r := range op.withCommonResponses(d) {
		rs := S{"description": r.desc}
		if r.schema != nil {
			media := r.media
			if media == "" {
				media = "application/json"
			}
			mt := S{"schema": r.schema}
			if r.example != nil {
				mt["example"] = r.example
			}
			rs["content"] = S{media: mt}
		}
		if len(r.headers) > 0 {
			hs := S{}
			for _, h := range r.headers {
				hs[h] = headerSchemas[h]
			}
			rs["headers"] = hs
		}
		responses[strconv.Itoa(r.status)] = rs
	}
	out["responses"] = responses
	return out
}

// withCommonResponses adds the answers every route of the kind can give
// (auth failures, store outages, malformed input) unless op lists its own.
func (op operation) withCommonResponses(d Dialect) []response {
	have := map[int]bool{}
	for _, r := range op.responses {
		have[r.status] = true
	}
	out := append([]response(nil), op.responses...)
	add := func(r response) {
		if !have[r.status] {
			have[r.status] = true
			out = append(out, r)
		}
	}
	errSchema := ref("Error")
	if d == HServe {
		if op.tag == "cors" || op.tag == "openapi" {
			return out
		}
		add(response{status: http.StatusUnauthorized, desc: "A missing or wrong X-Hydrogen-Client-ID, or (signed-in routes) no token, or one that is invalid, expired, revoked or of a deleted user.", schema: errSchema, headers: []string{"WWW-Authenticate"}})
		if op.security == clientToken {
			add(bannedResponse)
		}
		add(response{status: http.StatusBadRequest, desc: "Invalid input: a malformed body, an unknown or repeated field, a wrong type or value; error_msg names every problem.", schema: errSchema})
		add(response{status: http.StatusServiceUnavailable, desc: "The user store is unavailable or not ready. In a shared pool, also: the tenant is at its bound of concurrent requests, no seat of the pool came free within its queue wait, or the tenant's configuration is invalid. Retry after Retry-After seconds.", schema: errSchema, headers: []string{"Retry-After"}})
	} else if d == Management {
		if op.security == adminToken {
			add(response{status: http.StatusUnauthorized, desc: "No admin token, or not one of the tenant's.", schema: errSchema, headers: []string{"WWW-Authenticate"}})
			add(response{status: http.StatusServiceUnavailable, desc: "The user store is unavailable or not ready, or (changes and exports) the audit log cannot be written, so nothing was applied. In a shared pool, also: the tenant is at its bound of concurrent requests, no seat of the pool came free within its queue wait, or the tenant's configuration is invalid. Retry after Retry-After seconds.", schema: errSchema, headers: []string{"Retry-After"}})
		}
		add(response{status: http.StatusBadRequest, desc: "A malformed, unknown, repeated or out-of-range parameter or body field; error_msg names it.", schema: errSchema})
	} else if op.id != "getEndUserOpenAPI" {
		switch op.security {
		case userToken, refreshToken:
			add(response{status: http.StatusUnauthorized, desc: "No token, or one that is invalid, expired, revoked or of a deleted user.", schema: errSchema, headers: []string{"WWW-Authenticate"}})
			add(bannedResponse)
		case optionalToken:
			add(response{status: http.StatusUnauthorized, desc: "A token was sent but is invalid, expired, revoked or of a deleted user.", schema: errSchema, headers: []string{"WWW-Authenticate"}})
			add(bannedResponse)
		}
		add(response{status: http.StatusBadRequest, desc: "A malformed query string or body (not JSON or a form, or over 1 MiB).", schema: errSchema})
		add(response{status: http.StatusUnprocessableEntity, desc: "Invalid input: message is the first problem, errors lists them by field (unknown parameters and fields included).", schema: errSchema})
		add(response{status: http.StatusServiceUnavailable, desc: "The user store is unavailable or not ready, or (where a password is checked) this replica's password checks are at their memory budget. In a shared pool, also: the tenant is at its bound of concurrent requests, no seat of the pool came free within its queue wait, or the tenant's configuration is invalid. Retry after Retry-After seconds.", schema: errSchema, headers: []string{"Retry-After"}})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].status < out[j].status })
	return out
}

// bannedResponse is the refusal of a banned user's token or login; the
// message tells the tenant's reason and when the ban lifts.
var bannedResponse = response{status: http.StatusForbidden, schema: ref("Error"),
	desc: "The user is banned: the message tells the reason and, for a ban with an expiry, when it lifts (docs/server.md, Bans)."}

var headerSchemas = map[string]S{
	"Retry-After":         {"description": "Seconds to wait before retrying.", "schema": with(str(), "pattern", `^[0-9]+$`)},
	"WWW-Authenticate":    {"description": "The Bearer challenge.", "schema": str()},
	"Location":            {"description": "The path of the created resource.", "schema": str()},
	"Idempotent-Replayed": {"description": "true when the answer is that of an earlier request with the same key; nothing changed.", "schema": enum("true")},

	"Access-Control-Allow-Origin":  {"description": "The request's Origin, when allowed (never *).", "schema": str()},
	"Access-Control-Allow-Methods": {"description": "The path's methods.", "schema": str()},
	"Access-Control-Allow-Headers": {"description": "The SDK's request headers.", "schema": str()},
	"Access-Control-Max-Age":       {"description": "Seconds a browser may keep this answer.", "schema": with(str(), "pattern", `^[0-9]+$`)},
}

// title is s with its first letter in upper case (ASCII).
func title(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// operationSuffix turns a path into an operationId suffix:
// /v2.1/login/sms/ -> V21LoginSms.
func operationSuffix(path string) string {
	var b strings.Builder
	for _, seg := range strings.Split(path, "/") {
		seg = strings.NewReplacer(".", "", "-", "", "{", "", "}", "", "_", "").Replace(seg)
		b.WriteString(title(seg))
	}
	return b.String()
}

func sortStrings(s []string) { sort.Strings(s) }

// pathParams are the {name} segments of a path template, in order.
func pathParams(path string) []string {
	var names []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}"))
		}
	}
	return names
}

func pathParamSchema(name string) S {
	switch name {
	case "session", "session_id":
		return with(str(), "pattern", `^[A-Za-z0-9_-]{1,64}$`, "description", "A session id (its login's token family).")
	case "user":
		// The end-user dialect's {user}: an id, a name, an e-mail or a phone.
		return with(str(), "description", "A user id, name, e-mail address or phone number.")
	default:
		return with(str(), "pattern", `^[0-9]+$`, "description", "A positive integer id.")
	}
}
