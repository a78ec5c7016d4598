package account

import (
	"regexp"
	"strings"
)

// phonePattern is the end-user dialect's phone number: an optional '+' and
// 5 to 20 digits (the management dialect's _phone rule).
var phonePattern = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// LooksLikePhone reports whether s has the shape of a phone number.
func LooksLikePhone(s string) bool { return phonePattern.MatchString(s) }

// redacted stands in for a phone number or e-mail address in a logged path.
const redacted = "{contact}"

// LogPath is path as logs may record it: phones and e-mail addresses are
// personal data, and GET /api/v2/users/{user} takes either. A segment with
// an '@', and a phone-shaped segment right after "users" in an end-user
// path, become "{contact}". (A numeric id there is phone-shaped too: it is
// redacted alike, the route still says what was asked.)
func LogPath(path string) string {
	if !strings.Contains(path, "@") && !strings.HasPrefix(path, "/api/") {
		return path
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if strings.Contains(seg, "@") ||
			(i > 0 && segs[i-1] == "users" && strings.HasPrefix(path, "/api/") && LooksLikePhone(seg)) {
			segs[i] = redacted
		}
	}
	return strings.Join(segs, "/")
}
