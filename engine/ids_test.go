package engine

import (
	"regexp"
	"strings"
	"testing"
)

// Issue 12: the invocations and actuations of an event from the durable intake are named
// after the event (its broker ID), so they are named the same when the event is evaluated
// again after a crash; but an agent that sees one of them cannot derive the others (they
// were the event's ID + "-1", "-2", ...), nor the event's ID.
func TestActionIDsAreDeterministicNotDerivable(t *testing.T) {
	const base = "0123456789abcdef0123456789abcdef"
	a, b := actionIDs{base: base}, actionIDs{base: base}
	hexID := regexp.MustCompile(`^[0-9a-f]{24}$`)
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		id := a.next()
		if again := b.next(); again != id {
			t.Fatalf("action %d: %s, then %s for the same event", i+1, id, again)
		}
		if !hexID.MatchString(id) || strings.Contains(id, base[:8]) || seen[id] {
			t.Fatalf("action %d of event %s: id %q (want 24 hex digits, new, unrelated to the event's id)", i+1, base, id)
		}
		seen[id] = true
	}
	other := actionIDs{base: "f" + base[1:]}
	if id := other.next(); seen[id] {
		t.Fatalf("another event's first action has id %s too", id)
	}
	var random actionIDs
	if x, y := random.next(), random.next(); !hexID.MatchString(x) || x == y {
		t.Fatalf("events without an ID: ids %q, %q", x, y)
	}
}
