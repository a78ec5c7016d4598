package console

import (
	"io/fs"
	"regexp"
	"testing"
)

// Both languages hold the same keys, and every key a template names
// literally ({{$L.T "key"}}, Tf, T) exists in both.
func TestMessagesComplete(t *testing.T) {
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
	key := regexp.MustCompile(`\.Tf? "([a-z_0-9]+)"`)
	names, _ := fs.Glob(templateFiles, "templates/*.html")
	for _, name := range names {
		data, _ := fs.ReadFile(templateFiles, name)
		for _, m := range key.FindAllStringSubmatch(string(data), -1) {
			for _, l := range []lang{langEN, langZH} {
				if _, ok := messages[l][m[1]]; !ok {
					t.Errorf("%s names %q, which %s lacks", name, m[1], l)
				}
			}
		}
	}
}
