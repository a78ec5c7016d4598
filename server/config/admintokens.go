package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"userve.dev/userve/api/v1alpha1"
)

// AdminToken is one management bearer token and the name the audit log
// records for whoever presents it.
type AdminToken struct {
	Name  string
	Token string
}

// adminNamePattern: names appear in the audit log and its filters, so they
// are short and need no escaping ("alice", "ci.deploy", "ops@acme").
var adminNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// UnnamedAdminPrefix names entries without a "name:" part by position:
// the second entry of the list is "admin-2".
const UnnamedAdminPrefix = "admin-"

// ParseAdminTokens reads USERVE_ADMIN_TOKENS: comma-separated entries,
// each "name:token" or a bare token (named admin-N, N its 1-based
// position, so lists written before names existed keep working). A token
// holding ':' must therefore be written with a name. Errors never quote a
// token or anything that could be part of one.
func ParseAdminTokens(s string) ([]AdminToken, error) {
	var entries []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	tokens := make([]AdminToken, 0, len(entries))
	seen := map[string]bool{}
	for i, e := range entries {
		where := fmt.Sprintf("%s: token %d of %d", v1alpha1.EnvAdminTokens, i+1, len(entries))
		t := AdminToken{Name: UnnamedAdminPrefix + strconv.Itoa(i+1), Token: e}
		if name, token, named := strings.Cut(e, ":"); named {
			if name = strings.TrimSpace(name); !adminNamePattern.MatchString(name) {
				return nil, fmt.Errorf("%s: the name before ':' must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit (write entries as name:token)", where)
			}
			t = AdminToken{Name: name, Token: strings.TrimSpace(token)}
		}
		if len(t.Token) < MinAdminTokenLength {
			return nil, fmt.Errorf("%s is %d bytes, shorter than %d (generate one with: openssl rand -hex 32)",
				where, len(t.Token), MinAdminTokenLength)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s: the name %q is used twice (unnamed entries are named %sN by position)", where, t.Name, UnnamedAdminPrefix)
		}
		seen[t.Name] = true
		tokens = append(tokens, t)
	}
	return tokens, nil
}
