package engine

import (
	"testing"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// publish builds a received PUBLISH as paho hands it on (the DUP flag is only settable
// through the packet).
func received(pid uint16, qos byte, dup bool, topic, payload string, props ...paho.UserProperty) *paho.Publish {
	pp := &packets.Publish{PacketID: pid, QoS: qos, Duplicate: dup, Topic: topic, Payload: []byte(payload), Properties: &packets.Properties{}}
	for _, u := range props {
		pp.Properties.User = append(pp.Properties.User, packets.User{Key: u.Key, Value: u.Value})
	}
	return paho.PublishFromPacketPublish(pp)
}

// An external broker's event is named by what identifies its delivery, so that the same
// delivery sent again (after a crash, with the DUP flag and its packet id) gets the same
// ID and its actions the same ids, and no two deliveries share one.
func TestExternalEventIDs(t *testing.T) {
	x := newExternalIDs("engine-A")
	first := x.eventID(received(7, 1, false, "sensors/a", `{"t":1}`))
	if first == "" {
		t.Fatal("a QoS 1 delivery to a persistent session has no ID")
	}
	// After a crash the restarted engine (fresh memory) gets it again with DUP set.
	if again := newExternalIDs("engine-A").eventID(received(7, 1, true, "sensors/a", `{"t":1}`)); again != first {
		t.Fatalf("the resend after a restart: %s, want %s", again, first)
	}
	// Within one run: a resend (DUP) is the delivery it repeats.
	if again := x.eventID(received(7, 1, true, "sensors/a", `{"t":1}`)); again != first {
		t.Fatalf("the resend in the same run: %s, want %s", again, first)
	}
	// Anything else that differs is another delivery.
	for name, p := range map[string]*paho.Publish{
		"packet id": received(8, 1, false, "sensors/a", `{"t":1}`),
		"topic":     received(7, 1, false, "sensors/b", `{"t":1}`),
		"payload":   received(7, 1, false, "sensors/a", `{"t":2}`),
	} {
		if id := newExternalIDs("engine-A").eventID(p); id == first || id == "" {
			t.Errorf("another %s: ID %q", name, id)
		}
	}
	if id := newExternalIDs("engine-B").eventID(received(7, 1, false, "sensors/a", `{"t":1}`)); id == first {
		t.Error("another engine's delivery shares the ID")
	}
	// The same packet id, topic and payload again without DUP, later in the same run, is
	// a new event (the broker reused the packet id): another ID, and its own resend keeps it.
	y := newExternalIDs("engine-A")
	a := y.eventID(received(9, 1, false, "door", "pressed"))
	y.eventID(received(10, 1, false, "other", "x"))
	b := y.eventID(received(9, 1, false, "door", "pressed"))
	if a == b {
		t.Fatal("a reused packet id with the same message got the same ID in one run")
	}
	if c := y.eventID(received(9, 1, true, "door", "pressed")); c != b {
		t.Fatalf("the resend of the second delivery: %s, want %s", c, b)
	}
	// QoS 0 comes once; without a persistent session nothing is resent to us: random ids.
	if id := x.eventID(received(0, 0, false, "sensors/a", "x")); id != "" {
		t.Errorf("QoS 0: ID %q", id)
	}
	if id := newExternalIDs("").eventID(received(3, 1, false, "sensors/a", "x")); id != "" {
		t.Errorf("no persistent session: ID %q", id)
	}
	// The publisher's own name for its event wins: the same on any engine and packet id.
	named := paho.UserProperty{Key: eventIDProperty, Value: "dev1-000042"}
	p1 := newExternalIDs("engine-A").eventID(received(1, 1, false, "sensors/a", "x", named))
	p2 := newExternalIDs("engine-B").eventID(received(500, 1, false, "sensors/a", "y", named))
	p3 := newExternalIDs("").eventID(received(2, 2, false, "sensors/a", "x", named))
	if p1 == "" || p1 != p2 || p1 != p3 {
		t.Fatalf("deviceless-event-id: %q %q %q, want one ID", p1, p2, p3)
	}
	if p := newExternalIDs("engine-A").eventID(received(1, 1, false, "sensors/b", "x", named)); p == p1 {
		t.Error("the same publisher name on another topic shares the ID")
	}
	long := paho.UserProperty{Key: eventIDProperty, Value: string(make([]byte, maxEventIDProperty+1))}
	plain := newExternalIDs("engine-A").eventID(received(1, 1, false, "sensors/a", "x"))
	if p := newExternalIDs("engine-A").eventID(received(1, 1, false, "sensors/a", "x", long)); p != plain {
		t.Errorf("an over-long publisher name: %q, want the delivery's ID %q", p, plain)
	}
	// Action ids derive from the event's ID: the same for the same event, none alike.
	ids1, ids2 := actionIDs{base: first}, actionIDs{base: first}
	if a, b := ids1.next(), ids2.next(); a != b || a == first {
		t.Fatalf("first action ids %s, %s (event %s)", a, b, first)
	}
	if ids1.next() == ids2.n0() {
		t.Fatal("the second action id repeats the first")
	}
}

// n0 is the first id of a fresh actionIDs with the same base.
func (a *actionIDs) n0() string { b := actionIDs{base: a.base}; return b.next() }
