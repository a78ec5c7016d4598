package minapp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"userve.dev/userve/server/store"
)

// SelfWritable are the built-in fields a signed-in user may change on
// their own profile through the MinApp SDK (currentUser.set(...).update()):
// the WeChat-style profile fields. Identities (openid, unionid, the
// account's _username, _email, _phone and their verification), ids, groups
// and timestamps are the server's or go through their own routes
// (user/account/, phone verification).
var SelfWritable = []string{"nickname", "avatar", "gender", "city", "province", "country", "language"}

// SelfUpdate validates a user's edit of their own profile: built-ins (by
// store document field) to set, custom fields to set and to unset (null),
// every problem reported at once.
func (s Schema) SelfUpdate(body map[string]any) (builtins, set map[string]any, unset []string, err error) {
	builtins = map[string]any{}
	custom := map[string]any{}
	var problems []string
	for _, key := range sortedKeys(body) {
		v := body[key]
		if !isBuiltin(key) {
			custom[key] = v
			continue
		}
		if !slices.Contains(SelfWritable, key) {
			problems = append(problems, fmt.Sprintf("%s is a built-in field a user cannot change (writable: %s)", key, strings.Join(SelfWritable, ", ")))
			continue
		}
		f := builtinFields[key]
		if key == "gender" {
			g, gerr := gender(v)
			if gerr != nil {
				problems = append(problems, gerr.Error())
				continue
			}
			builtins[f.path] = g
			continue
		}
		str, serr := builtinString(key, v)
		if serr != nil {
			problems = append(problems, serr.Error())
			continue
		}
		builtins[f.path] = str
	}
	set, unset, cerr := s.CustomUpdate(custom)
	if cerr != nil {
		problems = append(problems, cerr.Error())
	}
	if len(problems) > 0 {
		return nil, nil, nil, errors.New(strings.Join(problems, "; "))
	}
	return builtins, set, unset, nil
}

// CustomJSON is p's custom fields as the profile objects show them: every
// declared field, null when unset, dates as RFC 3339.
func (s Schema) CustomJSON(p *store.Profile) map[string]any {
	out := make(map[string]any, len(s.names))
	for _, name := range s.names {
		v, ok := p.Custom[name]
		if !ok {
			out[name] = nil
			continue
		}
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		out[name] = v
	}
	return out
}
