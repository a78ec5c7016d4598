package controllers

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestPoolSeatsNeverOverbook: 100 tenants ask for 30 seats at once, 5 of
// them already seated (the seed): exactly 25 more get one, each admitted
// tenant is admitted again, and a released seat goes to the next one.
func TestPoolSeatsNeverOverbook(t *testing.T) {
	var s poolSeats
	var seeded atomic.Int32
	seed := func() ([]types.NamespacedName, error) {
		seeded.Add(1)
		var out []types.NamespacedName
		for i := range 5 {
			out = append(out, types.NamespacedName{Namespace: "old", Name: fmt.Sprint(i)})
		}
		return out, nil
	}
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.admit("p", types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)}, 30, seed)
			if err != nil {
				t.Error(err)
			}
			if ok {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 25 || seeded.Load() != 1 {
		t.Fatalf("%d admitted (want 25), seeded %d times (want once)", admitted.Load(), seeded.Load())
	}
	if ok, _ := s.admit("p", types.NamespacedName{Namespace: "old", Name: "3"}, 30, seed); !ok {
		t.Error("a seated tenant is refused its own seat")
	}
	var refused types.NamespacedName
	for i := range 100 {
		k := types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)}
		if !s.held["p"][k] {
			refused = k
			break
		}
	}
	if ok, _ := s.admit("p", refused, 30, seed); ok {
		t.Fatal("a full pool admitted one more")
	}
	s.release("p", types.NamespacedName{Namespace: "old", Name: "0"})
	if ok, _ := s.admit("p", refused, 30, seed); !ok {
		t.Error("a released seat was not given to the next tenant")
	}
}
