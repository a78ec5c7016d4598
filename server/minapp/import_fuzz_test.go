package minapp

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"userve.dev/userve/api/v1alpha1"
)

func importSchema() Schema {
	five := int32(5)
	return NewSchema([]v1alpha1.CustomField{
		{Name: "name", Type: v1alpha1.FieldString},
		{Name: "age", Type: v1alpha1.FieldInteger},
		{Name: "tags", Type: v1alpha1.FieldArray, MaxLength: &five},
		{Name: "prefs", Type: v1alpha1.FieldObject},
		{Name: "birthday", Type: v1alpha1.FieldDate},
	})
}

func TestReadImportRecordsShapes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		records    int
		bad        []int
		err        string
	}{
		{"lines", "{\"id\":1}\n\n{\"id\":2}\r\n", 2, nil, ""},
		{"array", " [ {\"id\":1},\n {\"id\":2} ] ", 2, nil, ""},
		{"bom", "\xEF\xBB\xBF{\"id\":1}", 1, nil, ""},
		{"bad line", "{\"id\":1}\n{nope\n{\"id\":3}", 3, []int{1}, ""},
		{"array element not object", "[1, {\"id\":2}]", 2, nil, ""},
		{"csv", "id,name\n", 0, nil, "not JSON"},
		{"empty", "  \n", 0, nil, "empty"},
		{"broken array", "[{\"id\":1}, {", 1, nil, "record 1 is not valid JSON"},
		{"after array", "[{\"id\":1}] {}", 1, nil, "after the JSON array"},
		{"too many", strings.Repeat("{}\n", 4), 3, nil, "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n int
			var bad []int
			err := ReadImportRecords(strings.NewReader(tc.body), 3, func(i int, raw []byte, recErr error) {
				if i != n {
					t.Fatalf("record %d came as %d", n, i)
				}
				n++
				if recErr != nil {
					bad = append(bad, i)
				}
			})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if n != tc.records || len(bad) != len(tc.bad) {
				t.Fatalf("%d records, bad %v; want %d, %v", n, bad, tc.records, tc.bad)
			}
		})
	}
	// A line over the record limit is that record's error; the next is read.
	long := "{\"id\":1,\"bio\":\"" + strings.Repeat("x", MaxImportRecordBytes) + "\"}\n{\"id\":2}\n"
	var errs []error
	err := ReadImportRecords(strings.NewReader(long), 10, func(i int, raw []byte, recErr error) { errs = append(errs, recErr) })
	if err != nil || len(errs) != 2 || errs[0] == nil || errs[1] != nil {
		t.Fatalf("long line: %v %v", err, errs)
	}
}

// FuzzImportRecords feeds arbitrary bodies through the reader and every
// format's decoder: no panics, records numbered in order, and a decoded
// record always has a positive source id and only accepted hashes.
func FuzzImportRecords(f *testing.F) {
	f.Add([]byte(`{"id":1,"name":"bob","password":"$2y$10$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe","followings":[2,3],"currency_sum":5}`))
	f.Add([]byte(`[{"user_id":36619758,"nickname":"PCG","user_group":[{"id":137,"name":"VIP"}],"created_at":1504504504,"name":"jack"}]`))
	f.Add([]byte("{\"user_id\":7,\"wallet\":{\"new_wallet\":500},\"_password_hash\":\"pbkdf2_sha256$1$s$3oSeptWmRE5EcGTmIXAIoSRL4SSAKNbtCnU8Z/V1Ecc=\",\"followings\":[8]}\n{\"user_id\":8}"))
	f.Add([]byte(`{"id":4503599627370497,"followings":[9223372036854775807]}`))
	f.Add([]byte(`{"id":1e3,"sex":2.0,"created_at":"2017-06-02 08:43:54","tags":[1,2,3,4,5,6]}`))
	s := importSchema()
	f.Fuzz(func(t *testing.T, body []byte) {
		next := 0
		err := ReadImportRecords(bytes.NewReader(body), MaxImportRecords, func(i int, raw []byte, recErr error) {
			if i != next {
				t.Fatalf("record %d came as %d", next, i)
			}
			next++
			if recErr != nil {
				return
			}
			for _, format := range []string{FormatMinApp, FormatThinkSNS, FormatUserve} {
				u, err := s.DecodeImportRecord(format, raw)
				if err != nil {
					continue
				}
				if u.SourceID < 1 {
					t.Fatalf("%s: decoded a record without a source id: %s", format, raw)
				}
				ids := append([]int64{u.SourceID}, u.Followings...)
				for _, g := range u.Groups {
					ids = append(ids, g.ID)
				}
				if slices.Max(ids) > MaxImportedID {
					t.Fatalf("%s: decoded an id above MaxImportedID: %s", format, raw)
				}
				if h := u.Profile.PasswordHash; h != "" && !strings.HasPrefix(h, "$2") && !strings.HasPrefix(h, "$argon2id$") && !strings.HasPrefix(h, "pbkdf2_sha256$") {
					t.Fatalf("%s: accepted password %q", format, h)
				}
			}
		})
		var be *ImportBodyError
		if err != nil && !errors.As(err, &be) && !errors.Is(err, ErrTooManyRecords) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// Ids above MaxImportedID are the record's error, wherever they stand: the
// sequences move past every id an import names, and the ids new users take
// after them must stay exact in JavaScript and countable in int64.
func TestImportRefusesIDsNewUsersCouldNotFollow(t *testing.T) {
	s := importSchema()
	top := "4503599627370496" // 2^52, the largest taken
	for _, tc := range []struct{ format, record string }{
		{FormatThinkSNS, `{"id":4503599627370497}`},
		{FormatThinkSNS, `{"id":1,"followings":[9223372036854775807]}`},
		{FormatMinApp, `{"user_id":1,"user_group":[{"id":4503599627370497,"name":"g"}]}`},
		{FormatMinApp, `{"user_id":1,"user_group":[4503599627370497]}`},
	} {
		_, err := s.DecodeImportRecord(tc.format, []byte(tc.record))
		if err == nil || !strings.Contains(err.Error(), "the largest id an import takes") {
			t.Errorf("%s %s: %v", tc.format, tc.record, err)
		}
	}
	u, err := s.DecodeImportRecord(FormatThinkSNS, []byte(`{"id":`+top+`,"followings":[`+top+`1]}`))
	if err == nil {
		t.Errorf("a followee above the bound was taken: %+v", u)
	}
	if u, err := s.DecodeImportRecord(FormatThinkSNS, []byte(`{"id":`+top+`}`)); err != nil || u.SourceID != MaxImportedID {
		t.Errorf("id 2^52: %+v, %v", u, err)
	}
}
