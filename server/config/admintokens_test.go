package config

import (
	"fmt"
	"strings"
	"testing"
)

// Named and unnamed entries mix: an unnamed one is named by its position,
// so a list written before names existed keeps its tokens working.
func TestParseAdminTokensNamesEntries(t *testing.T) {
	got, err := ParseAdminTokens(" alice:" + tokA + " ," + tokB + ", ci.deploy@acme : " + tokA + "x")
	if err != nil {
		t.Fatal(err)
	}
	want := []AdminToken{{"alice", tokA}, {"admin-2", tokB}, {"ci.deploy@acme", tokA + "x"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A bad entry is refused at start-up, and the message never quotes the
// token (it would land in the pod's logs).
func TestParseAdminTokensRefusesWithoutQuotingTokens(t *testing.T) {
	secret := strings.Repeat("s", 40)
	for _, in := range []string{
		"bad name:" + secret,                         // space in the name
		":" + secret,                                 // empty name
		"-x:" + secret,                               // starts with '-'
		strings.Repeat("n", 65) + ":" + secret,       // name too long
		"alice:" + secret[:31],                       // token too short
		"alice:" + secret + ",alice:" + secret + "t", // name twice
		secret + ",admin-1:" + secret + "t",          // explicit name taken by position
	} {
		_, err := ParseAdminTokens(in)
		if err == nil {
			t.Errorf("%q: accepted", in)
			continue
		}
		if strings.Contains(err.Error(), secret[:31]) {
			t.Errorf("%q: the error quotes the token: %v", in, err)
		}
	}
}

func FuzzParseAdminTokens(f *testing.F) {
	for _, s := range []string{"", tokA, "a:" + tokA + "," + tokB, ",,:", "a:b:c", "admin-2:" + tokA + "," + tokB} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tokens, err := ParseAdminTokens(s)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, tok := range tokens {
			if len(tok.Token) < MinAdminTokenLength || !adminNamePattern.MatchString(tok.Name) || names[tok.Name] {
				t.Fatalf("%q: accepted %+v", s, tok)
			}
			names[tok.Name] = true
		}
	})
}
