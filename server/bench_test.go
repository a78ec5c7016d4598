package server_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/test/mongofixture"
)

// BenchmarkProfileDetail compares one profile read through the server with
// the same read through the driver, in one run:
//
//	go test ./server -run '^$' -bench ProfileDetail -cpuprofile cpu.out
//
// "handler" is the server's own work (routing, auth, middleware, store
// call, JSON) without a network; "http" adds loopback HTTP; "driver" is the
// store query alone. make bench measures the same at scale.
func BenchmarkProfileDetail(b *testing.B) {
	db := mongofixture.NewDatabase(b)
	e := newEnvWith(b, testSpec(), mongofixture.URI(b), db.Name())
	const users = 200
	ids := make([]int64, users)
	for i := range ids {
		ids[i] = e.createUser(map[string]any{"nickname": fmt.Sprintf("user %d", i), "openid": fmt.Sprintf("o%d", i), "gender": i % 3, "age": i})
	}
	path := func(id int64) string { return fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", id) }

	b.Run("handler", func(b *testing.B) {
		defer reportCPU(b)()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, path(ids[rand.IntN(users)]), nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		client := e.srv.Client()
		defer reportCPU(b)()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path(ids[rand.IntN(users)]), nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
	b.Run("driver", func(b *testing.B) {
		profiles := db.Collection("profiles")
		defer reportCPU(b)()
		for b.Loop() {
			var doc bson.Raw
			if err := profiles.FindOne(context.Background(), bson.D{{Key: "_id", Value: ids[rand.IntN(users)]}}).Decode(&doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportCPU adds this process's CPU time per operation ("cpu-us/op"): the
// store runs in another process, so this is the Go side's work alone, which
// wall time per operation hides behind the store's latency.
func reportCPU(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64((processCPU(b)-start).Microseconds())/float64(b.N), "cpu-us/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
