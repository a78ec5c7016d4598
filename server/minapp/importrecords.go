package minapp

// Import records: the three formats of POST /v1/import/users/ decoded into
// store.ImportUser. Field maps are in docs/migration.md. Every problem of
// a record is reported at once, as one error.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/store"
)

// Import formats.
const (
	FormatMinApp   = "minapp"
	FormatThinkSNS = "thinksns"
	FormatUserve   = "userve"
)

// ParseImportFormat checks ?format=.
func ParseImportFormat(s string) (string, error) {
	switch s {
	case FormatMinApp, FormatThinkSNS, FormatUserve:
		return s, nil
	case "":
		return "", errors.New("format is required: minapp, thinksns or userve")
	}
	return "", fmt.Errorf("format %q is not one of minapp, thinksns, userve", s)
}

// maxFollowingsPerRecord bounds one record's followings.
const maxFollowingsPerRecord = 10000

// thinkSNSTime is the seed's "YYYY-MM-DD HH:MM:SS" (UTC).
const thinkSNSTime = "2006-01-02 15:04:05"

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

// DecodeImportRecord decodes one record of format.
func (s Schema) DecodeImportRecord(format string, raw []byte) (*store.ImportUser, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if obj == nil {
		return nil, errors.New("not a JSON object: null")
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	if format == FormatThinkSNS {
		return decodeThinkSNS(obj)
	}
	return s.decodeManagement(format, obj)
}

// decodeThinkSNS maps one ThinkSNS Plus users row (plus followings and
// wallet columns). Columns the map does not name are ignored: a users
// table has many (remember_token, deleted_at, ...).
func decodeThinkSNS(obj map[string]any) (*store.ImportUser, error) {
	u := &store.ImportUser{Namespace: FormatThinkSNS}
	p := &u.Profile
	var bad problems
	u.SourceID = sourceID(obj, "id", &bad)
	str := func(key string, max int) string {
		v, ok := obj[key]
		if !ok || v == nil {
			return ""
		}
		s, isStr := v.(string)
		if !isStr {
			bad.add("%s must be a string, not %s", key, jsonTypeOf(v))
			return ""
		}
		if utf8.RuneCountInString(s) > max {
			bad.add("%s is longer than %d characters", key, max)
			return ""
		}
		return s
	}
	if name := str("name", 64); name != "" {
		if err := importedName(name); err != nil {
			bad.add("name: %v", err)
		}
		p.Username, p.Nickname = name, name
		u.SetFields = append(u.SetFields, store.FieldUsername, store.FieldNickname)
	}
	contacts(u, str("email", 254), str("phone", 32), obj["email_verified_at"] != nil, obj["phone_verified_at"] != nil, &bad)
	if hash := str("password", 512); hash != "" {
		if _, err := auth.HashScheme(hash); err != nil {
			bad.add("password: %v", err)
		}
		p.PasswordHash = hash
		u.SetFields = append(u.SetFields, "password_hash")
	}
	p.Bio = str("bio", 1024)
	p.Location = str("location", 256)
	p.Avatar = str("avatar", 2048)
	p.BG = str("bg", 2048)
	u.SetFields = append(u.SetFields, store.FieldBio, store.FieldLocation, store.FieldAvatar, "bg")
	if v, ok := obj["sex"]; ok && v != nil {
		g, err := gender(v)
		if err != nil {
			bad.add("sex: %v", strings.TrimPrefix(err.Error(), "gender "))
		}
		p.Gender = g
		u.SetFields = append(u.SetFields, store.FieldGender)
	}
	for _, key := range []string{"created_at", "updated_at"} {
		v := str(key, 64)
		if v == "" {
			continue
		}
		t, err := time.Parse(thinkSNSTime, v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, v); err != nil {
				bad.add("%s %q is not a time like 2017-06-02 08:43:54", key, v)
				continue
			}
		}
		if key == "created_at" {
			p.Created = t.UTC()
		} else {
			p.Updated = t.UTC()
		}
		u.SetFields = append(u.SetFields, key)
	}
	u.Followings = followings(obj, u.SourceID, &bad)
	u.Balances = map[store.Account]int64{}
	for key, acct := range map[string]store.Account{"wallet_balance": store.AccountWallet,
		"new_wallet_balance": store.AccountNewWallet, "currency_sum": store.AccountCurrency} {
		if n := balance(obj, key, &bad); n > 0 {
			u.Balances[acct] = n
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	return u, nil
}

// importedName checks a name from another system more loosely than the
// registration rule (which existing users may predate): printable, no
// spaces, not all digits (logins tell names from phone numbers by that).
func importedName(s string) error {
	allDigits := true
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%q holds spaces or control characters", s)
		}
		if !unicode.IsDigit(r) {
			allDigits = false
		}
	}
	if allDigits {
		return fmt.Errorf("%q is all digits, which logins take for a phone number", s)
	}
	if strings.Contains(s, "@") {
		return fmt.Errorf("%q holds '@', which logins take for an e-mail address", s)
	}
	return nil
}

func contacts(u *store.ImportUser, email, phone string, emailVerified, phoneVerified bool, bad *problems) {
	p := &u.Profile
	if email != "" {
		e, err := NormalizeEmail(email)
		if err != nil {
			bad.add("email: %v", err)
		}
		p.Email, p.EmailVerified = e, emailVerified
		u.SetFields = append(u.SetFields, store.FieldEmail, store.FieldEmailVerified)
	}
	if phone != "" {
		if !phonePattern.MatchString(phone) {
			bad.add("phone %q must be 5 to 20 digits, optionally after a '+'", phone)
		}
		p.Phone, p.PhoneVerified = phone, phoneVerified
		u.SetFields = append(u.SetFields, store.FieldPhone, store.FieldPhoneVerified)
	}
}

// MaxImportedID bounds the ids an import may name (users, followees and
// groups): the sequences move past the largest one, and the ids that new
// users take after it must stay exact in JavaScript (below 2^53) and far
// from int64's end, where the sequence could no longer count.
const MaxImportedID = 1 << 52

func importedID(v any) (int64, error) {
	id, err := positiveID(v)
	if err == nil && id > MaxImportedID {
		return 0, fmt.Errorf("%d is above %d, the largest id an import takes (new users get ids above the largest imported one)", id, int64(MaxImportedID))
	}
	return id, err
}

func sourceID(obj map[string]any, key string, bad *problems) int64 {
	v, ok := obj[key]
	if !ok {
		bad.add("%s is required: the user's id in the source system", key)
		return 0
	}
	id, err := importedID(v)
	if err != nil {
		bad.add("%s: %v", key, err)
	}
	return id
}

func followings(obj map[string]any, self int64, bad *problems) []int64 {
	v, ok := obj["followings"]
	if !ok || v == nil {
		return nil
	}
	list, isList := v.([]any)
	if !isList {
		bad.add("followings must be an array of user ids, not %s", jsonTypeOf(v))
		return nil
	}
	if len(list) > maxFollowingsPerRecord {
		bad.add("followings holds more than %d ids", maxFollowingsPerRecord)
		return nil
	}
	out := make([]int64, 0, len(list))
	for _, e := range list {
		id, err := importedID(e)
		switch {
		case err != nil:
			bad.add("followings: %v", err)
		case id == self:
			bad.add("followings: a user cannot follow itself (%d)", id)
		case !slices.Contains(out, id):
			out = append(out, id)
		}
	}
	return out
}

func balance(obj map[string]any, key string, bad *problems) int64 {
	v, ok := obj[key]
	if !ok || v == nil {
		return 0
	}
	n, isNum := v.(json.Number)
	if !isNum {
		bad.add("%s must be an integer amount (cents), not %s", key, jsonTypeOf(v))
		return 0
	}
	amount, err := parseInteger(n)
	if err != nil || amount < 0 || amount > store.MaxAmount {
		bad.add("%s must be an integer amount from 0 to %d, not %s", key, store.MaxAmount, n)
		return 0
	}
	return amount
}

// decodeManagement maps a MinApp _userprofile object (format minapp) or a
// record of userve's own export (format userve: the same object plus the
// end-user fields, followings, wallet and password hash).
func (s Schema) decodeManagement(format string, obj map[string]any) (*store.ImportUser, error) {
	u := &store.ImportUser{Namespace: format}
	p := &u.Profile
	p.Custom = map[string]any{}
	var bad problems
	idKey := "user_id"
	if _, ok := obj[idKey]; !ok {
		if _, ok := obj["id"]; ok {
			idKey = "id"
		}
	}
	u.SourceID = sourceID(obj, idKey, &bad)
	extras := format == FormatUserve
	var email, phone string
	var emailVerified, phoneVerified bool
	for _, key := range sortedKeys(obj) {
		v := obj[key]
		switch {
		case key == idKey:
		case builtinStringMax[key] > 0:
			str, err := builtinString(key, v)
			if err != nil {
				bad.add("%v", err)
				continue
			}
			setBuiltinString(p, key, str)
			u.SetFields = append(u.SetFields, builtinFields[key].path)
		case key == "gender":
			if v == nil {
				continue
			}
			g, err := gender(v)
			if err != nil {
				bad.add("%v", err)
			}
			p.Gender = g
			u.SetFields = append(u.SetFields, store.FieldGender)
		case key == "user_group":
			u.Groups = importGroups(v, &bad)
			for _, g := range u.Groups {
				p.Groups = append(p.Groups, g.ID)
			}
			u.SetFields = append(u.SetFields, store.FieldGroups)
		case key == "created_at", key == "updated_at":
			t, err := importUnixTime(key, v)
			if err != nil {
				bad.add("%v", err)
				continue
			}
			if key == "created_at" {
				p.Created = t
			} else {
				p.Updated = t
			}
			u.SetFields = append(u.SetFields, key)
		case key == "_username":
			str, _ := v.(string)
			if err := importedName(str); err != nil || str == "" {
				bad.add("_username must be a name without spaces, not %s", describe(v))
				continue
			}
			p.Username = str
			u.SetFields = append(u.SetFields, store.FieldUsername)
		case key == "_email", key == "_phone":
			str, ok := v.(string)
			if !ok {
				bad.add("%s must be a string, not %s", key, jsonTypeOf(v))
				continue
			}
			if key == "_email" {
				email = str
			} else {
				phone = str
			}
		case key == "_email_verified", key == "_phone_verified":
			b, ok := v.(bool)
			if !ok {
				bad.add("%s must be a boolean, not %s", key, jsonTypeOf(v))
				continue
			}
			if key == "_email_verified" {
				emailVerified = b
			} else {
				phoneVerified = b
			}
		case extras && (key == "_bio" || key == "_location" || key == "_bg"):
			str, ok := v.(string)
			if !ok || utf8.RuneCountInString(str) > 2048 {
				bad.add("%s must be a string of at most 2048 characters", key)
				continue
			}
			switch key {
			case "_bio":
				p.Bio = str
			case "_location":
				p.Location = str
			default:
				p.BG = str
			}
			u.SetFields = append(u.SetFields, strings.TrimPrefix(key, "_"))
		case extras && key == "_password_hash":
			str, _ := v.(string)
			if _, err := auth.HashScheme(str); err != nil {
				bad.add("_password_hash: %v", err)
				continue
			}
			p.PasswordHash = str
			u.SetFields = append(u.SetFields, "password_hash")
		case extras && key == "followings":
			u.Followings = followings(obj, u.SourceID, &bad)
		case extras && key == "wallet":
			w, ok := v.(map[string]any)
			if !ok {
				bad.add("wallet must be an object {wallet, new_wallet, currency}, not %s", jsonTypeOf(v))
				continue
			}
			u.Balances = map[store.Account]int64{}
			for _, k := range sortedKeys(w) {
				acct, ok := store.ParseAccount(k)
				if !ok {
					bad.add("wallet.%s is not an account (wallet, new_wallet, currency)", k)
					continue
				}
				if n := balance(w, k, &bad); n > 0 {
					u.Balances[acct] = n
				}
			}
		case extras && key == "groups":
			// The names of user_group's groups, read below.
		default:
			f, ok := s.fields[key]
			if !ok {
				bad.add("unknown field %q: declare it in spec.profile.customFields or drop it from the export", key)
				continue
			}
			if v == nil {
				continue
			}
			cv, err := customValue(f, v)
			if err != nil {
				bad.add("%v", err)
				continue
			}
			p.Custom[key] = cv
		}
	}
	if gs, ok := obj["groups"]; ok && extras {
		named := importGroups(gs, &bad)
		for i := range u.Groups {
			for _, g := range named {
				if g.ID == u.Groups[i].ID {
					u.Groups[i].Name = g.Name
				}
			}
		}
	}
	contacts(u, email, phone, emailVerified, phoneVerified, &bad)
	if p.EmailVerified && p.Email == "" {
		bad.add("_email_verified needs _email")
	}
	if p.PhoneVerified && p.Phone == "" {
		bad.add("_phone_verified needs _phone")
	}
	for _, name := range s.names {
		if s.fields[name].custom.Required {
			if _, ok := p.Custom[name]; !ok {
				bad.add("field %s is required", name)
			}
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	if len(p.Custom) == 0 {
		p.Custom = nil
	}
	return u, nil
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return jsonTypeOf(v)
}

func setBuiltinString(p *store.Profile, key, v string) {
	switch key {
	case "nickname":
		p.Nickname = v
	case "avatar":
		p.Avatar = v
	case "city":
		p.City = v
	case "province":
		p.Province = v
	case "country":
		p.Country = v
	case "language":
		p.Language = v
	case "openid":
		p.OpenID = v
	case "unionid":
		p.UnionID = v
	}
}

// importGroups reads user_group: ids, or {"id", "name"} objects (whose
// names name the groups the import creates).
func importGroups(v any, bad *problems) []store.ImportGroup {
	list, ok := v.([]any)
	if !ok {
		bad.add("user_group must be an array of group ids, not %s", jsonTypeOf(v))
		return nil
	}
	if len(list) > maxGroupsPerUser {
		bad.add("user_group holds more than %d ids", maxGroupsPerUser)
		return nil
	}
	var out []store.ImportGroup
	for _, e := range list {
		g := store.ImportGroup{}
		var err error
		if m, isObj := e.(map[string]any); isObj {
			g.ID, err = importedID(m["id"])
			if name, _ := m["name"].(string); name != "" {
				if n, cerr := checkGroupName(&name); cerr != nil {
					bad.add("user_group: %v", cerr)
				} else {
					g.Name = n
				}
			}
		} else {
			g.ID, err = importedID(e)
		}
		if err != nil {
			bad.add("user_group: %v", err)
			continue
		}
		if !slices.ContainsFunc(out, func(o store.ImportGroup) bool { return o.ID == g.ID }) {
			out = append(out, g)
		}
	}
	return out
}

func importUnixTime(key string, v any) (time.Time, error) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("%s must be a unix timestamp (integer seconds), not %s", key, jsonTypeOf(v))
	}
	i, err := parseInteger(n)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %v", key, err)
	}
	t, err := unixTime(i)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %v", key, err)
	}
	return t, nil
}
