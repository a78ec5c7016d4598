package minapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"userve.dev/userve/server/store"
)

// Length limits of built-in profile strings, in characters.
var builtinStringMax = map[string]int{
	"nickname": 256, "avatar": 2048, "city": 128, "province": 128, "country": 128,
	"language": 64, "openid": 256, "unionid": 256,
}

// Fields the server assigns; a create naming them is refused.
var serverAssigned = []string{"user_id", "id", "created_at", "updated_at"}

// maxGroupsPerUser bounds user_group on create.
const maxGroupsPerUser = 1000

// NewProfile validates a create body and builds the profile, reporting
// every problem at once. user_group ids still have to be checked against
// the store.
func (s Schema) NewProfile(body map[string]any) (*store.Profile, error) {
	p := &store.Profile{Custom: map[string]any{}}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, key := range sortedKeys(body) {
		v := body[key]
		switch {
		case slices.Contains(serverAssigned, key):
			fail("%s is assigned by the server and cannot be given", key)
		case builtinStringMax[key] > 0:
			str, err := builtinString(key, v)
			if err != nil {
				fail("%v", err)
				continue
			}
			switch key {
			case "nickname":
				p.Nickname = str
			case "avatar":
				p.Avatar = str
			case "city":
				p.City = str
			case "province":
				p.Province = str
			case "country":
				p.Country = str
			case "language":
				p.Language = str
			case "openid":
				p.OpenID = str
			case "unionid":
				p.UnionID = str
			}
		case key == "gender":
			g, err := gender(v)
			if err != nil {
				fail("%v", err)
				continue
			}
			p.Gender = g
		case key == "user_group":
			ids, err := groupIDs(v)
			if err != nil {
				fail("%v", err)
				continue
			}
			p.Groups = ids
		case key == "_username":
			str, ok := v.(string)
			if !ok {
				fail("_username must be a string, not %s", jsonTypeOf(v))
				continue
			}
			if err := ValidUsername(str); err != nil {
				fail("_username: %v", err)
				continue
			}
			p.Username = str
		case key == "_email":
			str, ok := v.(string)
			if !ok {
				fail("_email must be a string, not %s", jsonTypeOf(v))
				continue
			}
			email, err := NormalizeEmail(str)
			if err != nil {
				fail("_email: %v", err)
				continue
			}
			p.Email = email
		case key == "_phone":
			str, ok := v.(string)
			if !ok {
				fail("_phone must be a string, not %s", jsonTypeOf(v))
				continue
			}
			if !phonePattern.MatchString(str) {
				fail("_phone %q must be 5 to 20 digits, optionally after a '+'", str)
				continue
			}
			p.Phone = str
		case key == "_email_verified", key == "_phone_verified":
			b, ok := v.(bool)
			if !ok {
				fail("%s must be a boolean, not %s", key, jsonTypeOf(v))
				continue
			}
			if key == "_email_verified" {
				p.EmailVerified = b
			} else {
				p.PhoneVerified = b
			}
		default:
			f, ok := s.fields[key]
			if !ok {
				fail("unknown field %q: neither a built-in field nor declared in the profile schema", key)
				continue
			}
			if v == nil {
				continue // null: not set (checked against required below)
			}
			cv, err := customValue(f, v)
			if err != nil {
				fail("%v", err)
				continue
			}
			p.Custom[key] = cv
		}
	}
	if p.EmailVerified && p.Email == "" {
		fail("_email_verified needs _email")
	}
	if p.PhoneVerified && p.Phone == "" {
		fail("_phone_verified needs _phone")
	}
	for _, name := range s.names {
		if s.fields[name].custom.Required {
			if _, ok := p.Custom[name]; !ok {
				fail("field %s is required", name)
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if len(p.Custom) == 0 {
		p.Custom = nil
	}
	return p, nil
}

// CustomUpdate validates a PUT body: custom fields only. null unsets a
// field unless it is required.
func (s Schema) CustomUpdate(body map[string]any) (set map[string]any, unset []string, err error) {
	set = map[string]any{}
	var problems []string
	for _, key := range sortedKeys(body) {
		v := body[key]
		if isBuiltin(key) {
			problems = append(problems, fmt.Sprintf("%s is a built-in field: PUT updates custom fields only", key))
			continue
		}
		f, ok := s.fields[key]
		if !ok {
			problems = append(problems, fmt.Sprintf("field %q is not declared in the profile schema", key))
			continue
		}
		if v == nil {
			if f.custom.Required {
				problems = append(problems, fmt.Sprintf("field %s is required and cannot be null", key))
				continue
			}
			unset = append(unset, key)
			continue
		}
		cv, err := customValue(f, v)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		set[key] = cv
	}
	if len(problems) > 0 {
		return nil, nil, errors.New(strings.Join(problems, "; "))
	}
	return set, unset, nil
}

func builtinString(key string, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a string, not %s", key, jsonTypeOf(v))
	}
	if n := utf8.RuneCountInString(s); n > builtinStringMax[key] {
		return "", fmt.Errorf("%s is longer than %d characters", key, builtinStringMax[key])
	}
	if (key == "openid" || key == "unionid") && strings.TrimSpace(s) != s {
		return "", fmt.Errorf("%s must not start or end with spaces", key)
	}
	return s, nil
}

func gender(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("gender must be an integer (0, 1 or 2), not %s", jsonTypeOf(v))
	}
	g, err := parseInteger(n)
	if err != nil || g < 0 || g > 2 {
		return 0, fmt.Errorf("gender must be 0 (unknown), 1 (male) or 2 (female), not %s", n)
	}
	return g, nil
}

// groupIDs reads a JSON list of positive ids, without duplicates.
func groupIDs(v any) ([]int64, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("user_group must be an array of group ids, not %s", jsonTypeOf(v))
	}
	if len(list) > maxGroupsPerUser {
		return nil, fmt.Errorf("user_group holds more than %d ids", maxGroupsPerUser)
	}
	ids := make([]int64, 0, len(list))
	for _, e := range list {
		id, err := positiveID(e)
		if err != nil {
			return nil, fmt.Errorf("user_group: %v", err)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func positiveID(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("ids are positive integers, not %s", jsonTypeOf(v))
	}
	id, err := parseInteger(n)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%s is not an id (a positive integer)", n)
	}
	return id, nil
}

var phonePattern = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// NormalizeEmail checks a bare address and lower-cases it, so that
// uniqueness does not depend on case.
func NormalizeEmail(s string) (string, error) {
	if len(s) > 254 {
		return "", errors.New("longer than 254 characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s, "@") {
		return "", fmt.Errorf("%q is not an e-mail address", s)
	}
	return strings.ToLower(s), nil
}

// ValidUsername applies the end-user dialect's name rule: 2 to 12 display
// units where ASCII letters, digits and '_' count half and other letters
// one, made of letters, digits and '_', not starting with a digit.
func ValidUsername(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	halves := 0
	for i, r := range s {
		switch {
		case r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_'):
			halves++
		case r >= utf8.RuneSelf && unicode.IsLetter(r):
			halves += 2
		default:
			return fmt.Errorf("%q: only letters, digits and '_' are allowed", s)
		}
		if i == 0 && unicode.IsDigit(r) {
			return fmt.Errorf("%q must not start with a digit", s)
		}
	}
	if halves < 4 || halves > 24 {
		return fmt.Errorf("%q must be 2 to 12 display units long (ASCII characters count half)", s)
	}
	return nil
}
