package account

import (
	"strings"
	"testing"
)

func TestLogPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/api/v2/users/13800138000", "/api/v2/users/{contact}"},
		{"/api/v2/users/+8613800138000/followers", "/api/v2/users/{contact}/followers"},
		{"/api/v2/users/alice@example.com", "/api/v2/users/{contact}"},
		{"/api/v2/users/alice", "/api/v2/users/alice"},
		{"/api/v2/users/42", "/api/v2/users/42"},
		{"/api/v2/user/followings/123456", "/api/v2/user/followings/123456"},
		{"/userve/v2.0/miniapp/user_profile/70853916123/", "/userve/v2.0/miniapp/user_profile/70853916123/"},
		{"/no/such/route/a@b.c", "/no/such/route/{contact}"},
	}
	for _, tt := range tests {
		if got := LogPath(tt.in); got != tt.want {
			t.Errorf("LogPath(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzLogPath: whatever the path, no '@' survives, no phone-shaped {user}
// of an end-user path survives, and the path keeps its shape.
func FuzzLogPath(f *testing.F) {
	for _, s := range []string{"/api/v2/users/13800138000", "/api/v2/users/a@b.c/followers", "/userve/x@y/", "/api/users//", "@", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := LogPath(path)
		if strings.Contains(got, "@") {
			t.Fatalf("LogPath(%q) = %q keeps an '@'", path, got)
		}
		in, out := strings.Split(path, "/"), strings.Split(got, "/")
		if len(in) != len(out) {
			t.Fatalf("LogPath(%q) = %q changes the segments", path, got)
		}
		for i := 1; i < len(out); i++ {
			if strings.HasPrefix(path, "/api/") && out[i-1] == "users" && LooksLikePhone(out[i]) {
				t.Fatalf("LogPath(%q) = %q keeps a phone", path, got)
			}
			if out[i] != in[i] && out[i] != redacted {
				t.Fatalf("LogPath(%q) = %q rewrites %q", path, got, in[i])
			}
		}
	})
}
