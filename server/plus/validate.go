package plus

import (
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"userve.dev/userve/server/account"
)

// Name rules: 2..12 display units, where ASCII letters, digits and '_'
// count half a unit and every other allowed character (letters of any
// script) a whole one; no leading digit, so a name never looks like an id
// or a phone number, and no '@', so it never looks like an e-mail.
const (
	minNameHalfUnits = 4
	maxNameHalfUnits = 24
)

// nameProblem returns why name is not acceptable, or "".
func nameProblem(name string) string {
	if name == "" {
		return "name is required"
	}
	if !utf8.ValidString(name) {
		return "name must be valid UTF-8"
	}
	half := 0
	for i, r := range name {
		switch {
		case r < utf8.RuneSelf && (isASCIILetter(r) || r == '_'):
			half++
		case r >= '0' && r <= '9':
			if i == 0 {
				return "name may not start with a digit"
			}
			half++
		case r >= utf8.RuneSelf && unicode.IsLetter(r):
			half += 2
		case r >= utf8.RuneSelf && unicode.IsDigit(r):
			if i == 0 {
				return "name may not start with a digit"
			}
			half += 2
		default:
			return "name may contain only letters, digits and '_'"
		}
		if half > maxNameHalfUnits {
			return "name must be at most 12 units long (ASCII letters, digits and '_' count half)"
		}
	}
	if half < minNameHalfUnits {
		return "name must be at least 2 units long (ASCII letters, digits and '_' count half)"
	}
	return ""
}

func isASCIILetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// looksLikePhone is account.LooksLikePhone: the management dialect's _phone
// rule, so both dialects find the same users.
func looksLikePhone(s string) bool { return account.LooksLikePhone(s) }

// normalizeEmail returns the address in lower case, or "" when s is not a
// plain address (no display name, no angle brackets, at most 254 bytes).
func normalizeEmail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 254 || !strings.Contains(s, "@") || strings.ContainsAny(s, " <>\"\r\n") {
		return ""
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return ""
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || !strings.Contains(s[at+1:], ".") {
		return ""
	}
	return strings.ToLower(s)
}

// passwordProblem returns why a new password is not acceptable, or "".
func passwordProblem(p string) string {
	switch {
	case utf8.RuneCountInString(p) < 6:
		return "password must be at least 6 characters"
	case len(p) > 72:
		return "password may be at most 72 bytes"
	}
	return ""
}

// identityKind is how GET /users/{user} and login read an identifier.
type identityKind int

const (
	byEmail identityKind = iota
	byPhone
	byName
	byID
	byNothing
)

// detectIdentity reads s as an e-mail, a phone number, a name or an id, in
// that order. A phone-shaped string that is also a number may be retried as
// an id by the caller (numericID).
func detectIdentity(s string) (identityKind, string) {
	if s == "" {
		return byNothing, ""
	}
	if strings.Contains(s, "@") {
		if e := normalizeEmail(s); e != "" {
			return byEmail, e
		}
		return byNothing, ""
	}
	if looksLikePhone(s) {
		return byPhone, s
	}
	if _, ok := numericID(s); ok {
		return byID, s
	}
	if nameProblem(s) == "" {
		return byName, s
	}
	return byNothing, ""
}

// numericID parses a positive decimal id.
func numericID(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}
