package controllers

import (
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestAppliedObjectsStayBounded(t *testing.T) {
	a := &appliedObjects{limit: 100}
	var wg sync.WaitGroup
	for g := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				a.add(types.UID(fmt.Sprintf("uid-%d-%d", g, i)))
			}
		}()
	}
	wg.Wait()
	if n := a.cache.Len(); n != 100 {
		t.Fatalf("remembered %d objects after 1,500 adds, want the bound 100", n)
	}
	a.add("recent")
	if !a.has("recent") {
		t.Fatal("the object added last is forgotten")
	}
	if a.has("") {
		t.Fatal("an object without a UID counts as applied")
	}
	var none *appliedObjects
	none.add("x")
	if none.has("x") {
		t.Fatal("a nil set remembers")
	}
}
