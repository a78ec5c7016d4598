package controllers

import "testing"

// The header is read as the API server's bearer token authenticator reads
// it; the filter itself is tested against a real API server in
// controllers/integration (TestManager...: no token, a forged token, a token
// without the role, a metrics reader).
func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":       "abc",
		"bearer abc":       "abc",
		"BEARER abc":       "abc",
		"  Bearer abc  ":   "abc",
		"Bearer abc extra": "abc",
		"Bearer  abc":      "",
		"Bearer ":          "",
		"Bearer":           "",
		"Basic abc":        "",
		"abc":              "",
		"":                 "",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", header, got, ok, want)
		}
	}
}
