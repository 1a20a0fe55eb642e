// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Inflight holds a client's unfinished QoS 1 and 2 flows. MQTT keeps two packet identifier
// spaces per session (MQTT 3.1.1 §2.3.1, MQTT 5 §2.2.1): the server's, for the flows it
// started by sending a PUBLISH, and the client's, for the flows the client started. A
// client may use an id the server has in flight, and the other way round, so the two are
// kept apart. A record's type tells its space (see IsInbound): the server holds the PUBLISH
// and then the PUBREL of an outbound flow, and the PUBACK, PUBREC or PUBCOMP it answers an
// inbound flow with. Set files a record by its type; Get and Delete look up the server's
// ids, GetInbound and DeleteInbound the client's.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]packets.Packet // outbound flows, by the server's packet ids
	inbound             map[uint16]packets.Packet // inbound flows, by the client's packet ids
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	sendQuota           int32                     // remaining outbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]packets.Packet{},
		inbound:  map[uint16]packets.Packet{},
	}
}

// IsInbound reports whether pk, a record the server holds for a QoS flow, belongs to a flow
// the client started, so that its packet id is one the client chose: the PUBACK, PUBREC or
// PUBCOMP with which the server answers a client's QoS 1 or 2 PUBLISH. Any other record
// (the server's own PUBLISH, then its PUBREL) carries a packet id the server chose.
func IsInbound(pk packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		return true
	}
	return false
}

// space returns the map of m's packet id space.
func (i *Inflight) space(m packets.Packet) map[uint16]packets.Packet {
	if IsInbound(m) {
		return i.inbound
	}
	return i.internal
}

// Set adds or updates an inflight packet by packet id, in the id space of its type
// (see IsInbound).
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()

	space := i.space(m)
	_, ok := space[m.PacketID]
	space[m.PacketID] = m
	return !ok
}

// Get returns the inflight packet of an outbound flow, by the server's packet id.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.internal[id]; ok {
		return m, true
	}

	return packets.Packet{}, false
}

// GetInbound returns the inflight packet of an inbound flow, by the client's packet id.
func (i *Inflight) GetInbound(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.inbound[id]; ok {
		return m, true
	}

	return packets.Packet{}, false
}

// Len returns the number of inflight packets, of both id spaces.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal) + len(i.inbound)
}

// Clone returns a new instance of Inflight with the same message data.
// This is used when transferring inflights from a taken-over session.
func (i *Inflight) Clone() *Inflight {
	c := NewInflights()
	i.RLock()
	defer i.RUnlock()
	for k, v := range i.internal {
		c.internal[k] = v
	}
	for k, v := range i.inbound {
		c.inbound[k] = v
	}
	return c
}

// GetAll returns all the inflight messages, of both id spaces.
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()

	m := []packets.Packet{}
	for _, space := range []map[uint16]packets.Packet{i.internal, i.inbound} {
		for _, v := range space {
			if !immediate || (immediate && v.Expiry < 0) {
				m = append(m, v)
			}
		}
	}

	sort.Slice(m, func(i, j int) bool {
		return uint16(m[i].Created) < uint16(m[j].Created)
	})

	return m
}

// NextImmediate returns the next inflight packet which is indicated to be sent immediately.
// This typically occurs when the quota has been exhausted, and we need to wait until new quota
// is free to continue sending.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	// GetAll read-locks: locking here too deadlocked when a writer came in between the
	// two read locks (patch 9: acknowledgements are written from other goroutines).
	m := i.GetAll(true)
	if len(m) > 0 {
		return m[0], true
	}

	return packets.Packet{}, false
}

// Delete removes the inflight packet of an outbound flow, by the server's packet id.
// Returns true if the message existed.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[id]
	delete(i.internal, id)

	return ok
}

// DeleteInbound removes the inflight packet of an inbound flow, by the client's packet id.
// Returns true if the message existed.
func (i *Inflight) DeleteInbound(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.inbound[id]
	delete(i.inbound, id)

	return ok
}

// DeletePacket removes the inflight packet with m's packet id from the id space of m's
// type (see IsInbound), e.g. a packet returned by GetAll. Returns true if it existed.
func (i *Inflight) DeletePacket(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()

	space := i.space(m)
	_, ok := space[m.PacketID]
	delete(space, m.PacketID)

	return ok
}

// TakeRecieveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// TakeRecieveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// DecreaseSendQuota reduces the send quota by 1.
func (i *Inflight) DecreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
	}
}

// IncreaseSendQuota increases the send quota by 1.
func (i *Inflight) IncreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
}

// ResetSendQuota resets the send quota to the maximum allowed value.
func (i *Inflight) ResetSendQuota(n int32) {
	atomic.StoreInt32(&i.sendQuota, n)
	atomic.StoreInt32(&i.maximumSendQuota, n)
}
