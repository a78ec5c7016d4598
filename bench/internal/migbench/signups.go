package migbench

// Signups during the import: new users created through the management
// API while the batches go in. None may end up followed by anybody, since
// every edge in the file names an imported user (the race that import
// marks close, see server/store/imports_marks.go).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

// signupLoad creates up to n users, from 4 clients each pausing between
// creates, until stop is closed.
type signupLoad struct {
	mu        sync.Mutex
	ids       map[int64]bool
	latencies []time.Duration
	errors    int
	done      sync.WaitGroup
}

func startSignups(ctx context.Context, base string, n int, stop <-chan struct{}) *signupLoad {
	s := &signupLoad{ids: map[int64]bool{}}
	const clients = 4
	for c := 0; c < clients; c++ {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			for k := 0; k < n/clients; k++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
				id, took, err := createUser(ctx, base, fmt.Sprintf("bench_signup_%d_%d", c, k))
				s.mu.Lock()
				if err != nil {
					s.errors++
				} else {
					s.ids[id] = true
					s.latencies = append(s.latencies, took)
				}
				s.mu.Unlock()
			}
		}()
	}
	return s
}

func createUser(ctx context.Context, base, nickname string) (int64, time.Duration, error) {
	body, _ := json.Marshal(map[string]string{"nickname": nickname})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/userve/v2.0/miniapp/user_profile/", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	var out struct {
		UserID int64 `json:"user_id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusCreated {
		return 0, 0, fmt.Errorf("create: %d %v", res.StatusCode, err)
	}
	return out.UserID, time.Since(t0), nil
}

// SignupCheck is what the signups during the import saw.
type SignupCheck struct {
	Created  int     `json:"created"`
	Errors   int     `json:"errors"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Followed int     `json:"signups_with_followers"` // must be 0
	Edges    int     `json:"edges_to_signups"`
}

// check counts, in the export file, the edges that point at signups.
func (s *signupLoad) check(exportFile string) (*SignupCheck, error) {
	s.done.Wait()
	c := &SignupCheck{Created: len(s.ids), Errors: s.errors}
	if n := len(s.latencies); n > 0 {
		sort.Slice(s.latencies, func(a, b int) bool { return s.latencies[a] < s.latencies[b] })
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		c.P50ms, c.P99ms = ms(s.latencies[n/2]), ms(s.latencies[min(n-1, n*99/100)])
	}
	f, err := os.Open(exportFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	followed := map[int64]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec struct {
			Followings []int64 `json:"followings"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("export line: %w", err)
		}
		for _, id := range rec.Followings {
			if s.ids[id] {
				followed[id] = true
				c.Edges++
			}
		}
	}
	c.Followed = len(followed)
	return c, sc.Err()
}
