package console

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Both languages hold the same keys, and every key a template or the Go
// code names is one of them (a missing key would show as itself).
func TestMessagesAreComplete(t *testing.T) {
	for k := range messages[langEN] {
		if _, ok := messages[langZH][k]; !ok {
			t.Errorf("%q has no Chinese text", k)
		}
	}
	for k := range messages[langZH] {
		if _, ok := messages[langEN][k]; !ok {
			t.Errorf("%q has no English text", k)
		}
	}
	used := regexp.MustCompile(`\.Tf? "([a-z_0-9-]+)"|\.Tf?\("([a-z_0-9-]+)"|"(err_[a-z_]+|nav_[a-z_]+)"`)
	check := func(name string, data []byte) {
		for _, m := range used.FindAllSubmatch(data, -1) {
			key := string(m[1]) + string(m[2]) + string(m[3])
			if key[len(key)-1] == '_' {
				continue // a prefix the code completes ("gender_" + value)
			}
			if _, ok := messages[langEN][key]; !ok {
				t.Errorf("%s names message %q, which does not exist", name, key)
			}
		}
	}
	_ = fs.WalkDir(templateFiles, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := templateFiles.ReadFile(path)
			check(path, data)
		}
		return nil
	})
	goFiles, _ := filepath.Glob("*.go")
	for _, f := range goFiles {
		if data, err := os.ReadFile(f); err == nil && !regexp.MustCompile(`_test\.go$`).MatchString(f) {
			check(f, data)
		}
	}
}

// The language is the switch's cookie, else the best of Accept-Language.
func TestRequestLang(t *testing.T) {
	for _, c := range []struct {
		accept, cookie string
		want           lang
	}{
		{"", "", langEN},
		{"zh-CN,zh;q=0.9,en;q=0.8", "", langZH},
		{"en-US,zh;q=0.5", "", langEN},
		{"fr", "", langEN},
		{"fr, zh-TW;q=0.1", "", langZH},
		{"en;q=0.2, zh;q=0.7", "", langZH},
		{"zh-CN", "en", langEN},
		{"en", "zh", langZH},
		{"en", "xx", langEN},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", c.accept)
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: langCookie, Value: c.cookie})
		}
		if got := requestLang(r); got != c.want {
			t.Errorf("Accept-Language %q, cookie %q: %s, want %s", c.accept, c.cookie, got, c.want)
		}
	}
}
