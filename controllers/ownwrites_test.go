package controllers

import (
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// The echo of the reconciler's own write is not reconciled again; anyone
// else's edit of the same object (another resourceVersion) is, and so is a
// deletion. 30 objects written and echoed in parallel.
func TestOwnWritesSkipOnlyTheirEcho(t *testing.T) {
	var w ownWrites
	p := w.notOwnWrite()
	cm := func(name, rv string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
	}
	var wg sync.WaitGroup
	passed := make(chan string, 90)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("t%02d-config", i)
			w.wrote(cm(name, "10"))
			if p.Update(event.UpdateEvent{ObjectOld: cm(name, "9"), ObjectNew: cm(name, "10")}) {
				passed <- name + " own write"
			}
			// Someone else edits it afterwards: reconciled.
			if !p.Update(event.UpdateEvent{ObjectOld: cm(name, "10"), ObjectNew: cm(name, "11")}) {
				passed <- name + " foreign edit skipped"
			}
			if !p.Delete(event.DeleteEvent{Object: cm(name, "11")}) {
				passed <- name + " deletion skipped"
			}
		}()
	}
	wg.Wait()
	close(passed)
	for msg := range passed {
		t.Error(msg)
	}
	// A Secret of the same name is another object.
	w.wrote(cm("x", "5"))
	if !p.Create(event.CreateEvent{Object: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x", ResourceVersion: "5"}}}) {
		t.Error("a Secret's event was taken for a ConfigMap's write")
	}
}
