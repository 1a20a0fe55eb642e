package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync"

	"github.com/eclipse/paho.golang/paho"
)

// eventIDProperty is the MQTT 5 user property a publisher may set to name its event once
// for all: an external broker's event with it gets the same ID on whichever engine of the
// group evaluates it, however often it is delivered.
const eventIDProperty = "deviceless-event-id"

// maxEventIDProperty bounds the publisher's name for its event (a longer one is ignored).
const maxEventIDProperty = 256

// externalIDs names the QoS 1/2 events of an external broker so that an event evaluated
// again after a crash or a stop of the engine gives its invocations and actuations the same
// ids (actionIDs), and agents answer the repeats from their memory of ids instead of running
// or applying them again. An external broker keeps no journal for us; what identifies a
// delivery across a restart is:
//
//   - the publisher's deviceless-event-id, when it sets one: the ID is a hash of the topic and
//     that name, the same on every engine of the group (exactly once also when another member
//     gets the event, as EMQX re-dispatches a dead member's messages);
//   - else, with a persistent session (client_id), the session's delivery: the broker
//     resends a QoS 1/2 message it sent but did not get the acknowledgement of with the same
//     packet id (MQTT 5 §4.4), so the ID is a hash of the client id, the packet id, the topic
//     and the payload. Packet ids are reused once acknowledged: a later delivery with the
//     same packet id, topic and payload would share the ID. Within one run of the engine such
//     a first delivery (no DUP flag: it cannot be a resend) is told apart by a counter; across
//     a restart it is not (docs/engine.md, "Action ids with an external broker").
//   - QoS 0 events, and any event without a persistent session, come once: random ids.
//
// The hash is not keyed: an agent that sees an event can compute its actions' ids, as it
// could before for none (the embedded broker's journal key has no counterpart here).
type externalIDs struct {
	clientID string // "" without a persistent session

	mu sync.Mutex
	// last[pid] is the hash of the last delivery with packet id pid in this run, and
	// salt[pid] how many first deliveries it has already had under that hash.
	last map[uint16]uint64
	salt map[uint16]uint32
}

func newExternalIDs(clientID string) *externalIDs {
	return &externalIDs{clientID: clientID, last: map[uint16]uint64{}, salt: map[uint16]uint32{}}
}

// eventID returns the event's ID ("" for random action ids).
func (x *externalIDs) eventID(p *paho.Publish) string {
	if p.QoS == 0 {
		return ""
	}
	if p.Properties != nil {
		for _, u := range p.Properties.User {
			if u.Key == eventIDProperty && u.Value != "" && len(u.Value) <= maxEventIDProperty {
				h := sha256.New()
				writeField(h, "publisher")
				writeField(h, p.Topic)
				writeField(h, u.Value)
				return hex.EncodeToString(h.Sum(nil)[:16])
			}
		}
	}
	if x.clientID == "" || p.PacketID == 0 {
		return ""
	}
	h := sha256.New()
	writeField(h, "delivery")
	writeField(h, x.clientID)
	var pid [2]byte
	binary.BigEndian.PutUint16(pid[:], p.PacketID)
	h.Write(pid[:])
	writeField(h, p.Topic)
	writeField(h, string(p.Payload))
	sum := h.Sum(nil)
	short := binary.BigEndian.Uint64(sum)
	x.mu.Lock()
	var n uint32
	if prev, ok := x.last[p.PacketID]; ok && prev == short && !p.Duplicate() {
		// The same packet id, topic and payload again, and not a resend: another event.
		n = x.salt[p.PacketID] + 1
		x.salt[p.PacketID] = n
	} else if !ok || prev != short {
		x.last[p.PacketID] = short
		delete(x.salt, p.PacketID)
	} else {
		n = x.salt[p.PacketID] // a resend in this run: as the delivery it repeats
	}
	x.mu.Unlock()
	if n > 0 {
		h.Write(binary.BigEndian.AppendUint32(nil, n))
		sum = h.Sum(nil)
	}
	return hex.EncodeToString(sum[:16])
}

// writeField writes s length-prefixed, so that no two field lists hash alike.
func writeField(h interface{ Write([]byte) (int, error) }, s string) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
	h.Write([]byte(s))
}
