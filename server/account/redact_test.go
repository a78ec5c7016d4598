package account

import "testing"

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
