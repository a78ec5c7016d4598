package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// Two tenants' servers in one process share their router (routelist.go);
// 40 parallel requests for the same user id, alternating between them,
// each get their own tenant's user.
func TestSharedRouterKeepsTenantsApart(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	idA := a.createUser(map[string]any{"nickname": "from-a"})
	idB := b.createUser(map[string]any{"nickname": "from-b"})
	if idA != idB {
		t.Fatalf("user ids %d and %d: the test wants the same id in both tenants", idA, idB)
	}
	path := fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", idA)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		e, want := a, "from-a"
		if i%2 == 1 {
			e, want = b, "from-b"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			res, err := e.srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var body struct{ Nickname string }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK || body.Nickname != want {
				errs <- fmt.Errorf("status %d nickname %q (want %q): %v", res.StatusCode, body.Nickname, want, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
