package edgeagent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dedupe keeps a finished result as it was published, so a repeat gets the same bytes
// without encoding it again.
func TestDedupeKeepsPayload(t *testing.T) {
	d := newDedupe(2)
	a, b := replyTo{topic: "a"}, replyTo{topic: "b"}
	if _, seen, _ := d.join("1", a); seen {
		t.Fatal("new id seen")
	}
	if _, seen, done := d.join("1", b); !seen || done || !d.inFlight("1") {
		t.Fatalf("in flight: seen %v done %v", seen, done)
	}
	if diff := cmp.Diff([]replyTo{a, b}, d.complete("1", []byte(`{"id":"1"}`), true), cmp.AllowUnexported(replyTo{})); diff != "" {
		t.Errorf("waiters (-want +got):\n%s", diff)
	}
	if payload, seen, done := d.join("1", b); !seen || !done || string(payload) != `{"id":"1"}` {
		t.Fatalf("finished: %s seen %v done %v", payload, seen, done)
	}
	d.join("2", a)
	if got := d.complete("2", []byte("x"), false); len(got) != 1 {
		t.Fatalf("waiters %v", got)
	}
	if _, seen, _ := d.join("2", a); seen {
		t.Fatal("a result not stored is still seen")
	}
	for _, id := range []string{"3", "4"} {
		d.join(id, a)
		d.complete(id, []byte(id), true)
	}
	if _, seen, _ := d.join("1", a); seen {
		t.Fatal("the oldest of more than max results is kept")
	}
}
