package controllers

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func jsonMap(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCovers(t *testing.T) {
	cases := []struct {
		name       string
		have, want string
		covered    bool
	}{
		{"equal", `{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`, true},
		{"server defaults are extra keys", `{"a":1,"b":"x","c":true}`, `{"a":1}`, true},
		{"edited value", `{"a":2}`, `{"a":1}`, false},
		{"missing value", `{}`, `{"a":1}`, false},
		{"zero values match omitted ones", `{}`, `{"a":0,"b":false,"c":"","d":{},"e":[]}`, true},
		{"nested", `{"spec":{"x":{"y":1,"z":2}}}`, `{"spec":{"x":{"y":1}}}`, true},
		{"nested edit", `{"spec":{"x":{"y":3}}}`, `{"spec":{"x":{"y":1}}}`, false},
		{"list items may hold defaults", `{"l":[{"name":"a","p":"TCP"}]}`, `{"l":[{"name":"a"}]}`, true},
		{"list item added by hand", `{"l":[{"name":"a"},{"name":"b"}]}`, `{"l":[{"name":"a"}]}`, false},
		{"list item removed by hand", `{"l":[]}`, `{"l":[{"name":"a"}]}`, false},
		{"list order", `{"l":["b","a"]}`, `{"l":["a","b"]}`, false},
		{"type change", `{"a":"1"}`, `{"a":1}`, false},
	}
	for _, c := range cases {
		if got := covers(jsonMap(t, c.have), jsonMap(t, c.want)); got != c.covered {
			t.Errorf("%s: covers(%s, %s) = %v", c.name, c.have, c.want, got)
		}
	}
}

func TestApplyContentDropsStatusTypeAndNulls(t *testing.T) {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "n"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"k": "v"}},
	}
	m, err := applyContent(svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "apiVersion", "kind"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s kept in the apply content", k)
		}
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, item := range v {
				if item == nil {
					t.Errorf("null %s kept", k)
				}
				walk(item)
			}
		case []any:
			for _, item := range v {
				walk(item)
			}
		}
	}
	walk(m)
	if m["metadata"].(map[string]any)["name"] != "a" {
		t.Errorf("metadata lost: %v", m["metadata"])
	}
}

func TestDigestIsStableAndSensitive(t *testing.T) {
	a := jsonMap(t, `{"x":{"b":1,"a":[1,2]},"y":"z"}`)
	b := jsonMap(t, `{"y":"z","x":{"a":[1,2],"b":1}}`)
	if digestOf(a) != digestOf(b) {
		t.Error("digest depends on key order")
	}
	if digestOf(a) == digestOf(jsonMap(t, `{"x":{"b":1,"a":[1]},"y":"z"}`)) {
		t.Error("a dropped list item kept the digest: removals would not be applied")
	}
}

// Any object covers itself, and its digest does not depend on how it was
// built: otherwise a converged tenant would be applied again and again.
func FuzzCoversItself(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,"x",{"c":null}],"d":false}}`, `{"l":[[],{},""]}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var a, b map[string]any
		if json.Unmarshal([]byte(doc), &a) != nil || json.Unmarshal([]byte(doc), &b) != nil {
			return
		}
		if !covers(a, b) {
			t.Fatalf("%s does not cover itself", doc)
		}
		if digestOf(a) != digestOf(b) {
			t.Fatalf("%s has two digests", doc)
		}
	})
}
