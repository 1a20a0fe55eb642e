// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2026 Deviceless

package mqtt

// Tests of the two packet identifier spaces (PATCHES.md): a client's packet ids and the
// server's are independent (MQTT 3.1.1 §2.3.1, MQTT 5 §2.2.1).

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// qosCall is one OnQosPublish, OnQosComplete or OnQosDropped call.
type qosCall struct {
	event   string
	typ     byte
	id      uint16
	inbound bool
}

// qosHook records the QoS hook calls, as a storage hook sees them.
type qosHook struct {
	HookBase
	mu    sync.Mutex
	calls []qosCall
}

func (h *qosHook) ID() string { return "qos-recorder" }

func (h *qosHook) Provides(b byte) bool {
	return bytes.Contains([]byte{OnQosPublish, OnQosComplete, OnQosDropped}, []byte{b})
}

func (h *qosHook) record(event string, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, qosCall{event, pk.FixedHeader.Type, pk.PacketID, IsInbound(pk)})
}

func (h *qosHook) OnQosPublish(cl *Client, pk packets.Packet, sent int64, resends int) {
	h.record("publish", pk)
}
func (h *qosHook) OnQosComplete(cl *Client, pk packets.Packet) { h.record("complete", pk) }
func (h *qosHook) OnQosDropped(cl *Client, pk packets.Packet)  { h.record("dropped", pk) }

func (h *qosHook) take() []qosCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

// newIDSpaceServer returns a server with a qosHook and a connected test client whose
// output is read and discarded.
func newIDSpaceServer(t *testing.T) (*Server, *Client, *qosHook) {
	t.Helper()
	s := newServer()
	h := new(qosHook)
	require.NoError(t, s.AddHook(h, nil))
	cl, r, w := newTestClient()
	cl.ops.hooks = s.hooks
	cl.ops.info = s.Info
	go func() { _, _ = io.Copy(io.Discard, r) }()
	t.Cleanup(func() { _ = w.Close() })
	return s, cl, h
}

func TestIsInbound(t *testing.T) {
	for typ, want := range map[byte]bool{
		packets.Publish: false,
		packets.Pubrel:  false,
		packets.Puback:  true,
		packets.Pubrec:  true,
		packets.Pubcomp: true,
	} {
		require.Equal(t, want, IsInbound(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}}), packets.PacketNames[typ])
	}
}

func TestInflightSpacesApart(t *testing.T) {
	i := NewInflights()
	out := packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, Payload: []byte("out"), Created: 1}
	in := packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, Created: 2}
	require.True(t, i.Set(out))
	require.True(t, i.Set(in)) // not an update of out
	require.Equal(t, 2, i.Len())
	require.Equal(t, []packets.Packet{out, in}, i.GetAll(false))
	require.Equal(t, 2, i.Clone().Len())

	got, ok := i.Get(1)
	require.True(t, ok)
	require.Equal(t, out, got)
	got, ok = i.GetInbound(1)
	require.True(t, ok)
	require.Equal(t, in, got)

	require.True(t, i.DeleteInbound(1))
	require.False(t, i.DeleteInbound(1))
	_, ok = i.Get(1)
	require.True(t, ok, "deleting the inbound flow removed the outbound one")

	require.True(t, i.Set(in))
	require.True(t, i.DeletePacket(out))
	_, ok = i.GetInbound(1)
	require.True(t, ok, "deleting the outbound flow removed the inbound one")
	require.True(t, i.DeletePacket(in))
	require.Equal(t, 0, i.Len())
}

// The server's ids never avoid the client's: NextPacketID may hand out an id the client
// has in flight.
func TestNextPacketIDIgnoresInboundIDs(t *testing.T) {
	cl, _, _ := newTestClient()
	cl.State.Inflight.Set(packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}})
	i, err := cl.NextPacketID()
	require.NoError(t, err)
	require.Equal(t, uint32(1), i)
}

// A client's QoS 2 publish with the id of a message the server has in flight to it (mochi
// issue #545): both flows complete, each on its own, and the hooks see each flow's record.
func TestServerInboundQos2BesideOutboundSameID(t *testing.T) {
	s, cl, h := newIDSpaceServer(t)
	out := packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "a/b/c", Payload: []byte("to the client")}
	cl.State.Inflight.Set(out)
	s.Info.Inflight = 1

	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Publish].Get(packets.TPublishQos2).Packet)) // id 7
	got, ok := cl.State.Inflight.Get(7)
	require.True(t, ok, "the client's QoS 2 publish 7 overwrote the server's PUBLISH 7")
	require.Equal(t, out, got)
	rec, ok := cl.State.Inflight.GetInbound(7)
	require.True(t, ok)
	require.Equal(t, packets.Pubrec, rec.FixedHeader.Type)
	require.Equal(t, int64(2), s.Info.Inflight)

	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Pubrel].Get(packets.TPubrel).Packet)) // id 7
	_, ok = cl.State.Inflight.GetInbound(7)
	require.False(t, ok)
	_, ok = cl.State.Inflight.Get(7)
	require.True(t, ok, "the client's PUBREL 7 completed the server's PUBLISH 7")

	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Puback].Get(packets.TPuback).Packet)) // id 7
	require.Equal(t, 0, cl.State.Inflight.Len())
	require.Equal(t, int64(0), s.Info.Inflight)

	require.Equal(t, []qosCall{
		{"publish", packets.Pubrec, 7, true},
		{"complete", packets.Pubrec, 7, true},   // the client's PUBREL ends the inbound flow
		{"complete", packets.Publish, 7, false}, // the client's PUBACK ends the outbound one
	}, h.take())
}

// A client's QoS 1 publish with the id of a message the server has in flight to it: the
// server's PUBLISH stays in flight (v2.7.9 deleted it, and its stored copy).
func TestServerInboundQos1BesideOutboundSameID(t *testing.T) {
	s, cl, h := newIDSpaceServer(t)
	cl.State.Inflight.Set(packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}})
	s.Info.Inflight = 1

	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Publish].Get(packets.TPublishQos1).Packet)) // id 7
	_, ok := cl.State.Inflight.Get(7)
	require.True(t, ok)
	require.Equal(t, 1, cl.State.Inflight.Len())
	require.Equal(t, int64(1), s.Info.Inflight)
	require.Equal(t, []qosCall{
		{"publish", packets.Puback, 7, true},
		{"complete", packets.Puback, 7, true},
	}, h.take())
}

// The outbound QoS 2 flow: the hooks see the server's PUBLISH, then its PUBREL at PUBCOMP.
func TestServerOutboundQos2HookRecords(t *testing.T) {
	s, cl, h := newIDSpaceServer(t)
	cl.State.Inflight.Set(packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}})
	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Pubrec].Get(packets.TPubrec).Packet))
	pubrel, ok := cl.State.Inflight.Get(7)
	require.True(t, ok)
	require.Equal(t, packets.Pubrel, pubrel.FixedHeader.Type)
	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Pubcomp].Get(packets.TPubcomp).Packet))
	require.Equal(t, 0, cl.State.Inflight.Len())
	require.Equal(t, []qosCall{{"complete", packets.Pubrel, 7, false}}, h.take())
}

// A rejected PUBREC drops the server's PUBLISH; a rejected PUBREL the server's PUBREC.
func TestServerDroppedHookRecords(t *testing.T) {
	s, cl, h := newIDSpaceServer(t)
	cl.Properties.ProtocolVersion = 5
	cl.State.Inflight.Set(packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}})
	cl.State.Inflight.Set(packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}})
	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Pubrec].Get(packets.TPubrecInvalidReason).Packet))
	require.NoError(t, s.processPacket(cl, *packets.TPacketData[packets.Pubrel].Get(packets.TPubrelInvalidReason).Packet))
	require.Equal(t, 0, cl.State.Inflight.Len())
	require.Equal(t, []qosCall{
		{"dropped", packets.Publish, 7, false},
		{"dropped", packets.Pubrec, 7, true},
	}, h.take())
}

// Expired records are dropped once each, with the record itself: v2.7.9 called
// OnQosDropped a second time with a bare packet id, which a storage hook cannot place in
// either id space.
func TestServerClearExpiredInflightsHookOnce(t *testing.T) {
	s, cl, h := newIDSpaceServer(t)
	s.Options.Capabilities.MaximumMessageExpiryInterval = 4
	n := time.Now().Unix()
	cl.State.Inflight.Set(packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, Created: n - 5}) // expired
	cl.State.Inflight.Set(packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish}, Created: n})    // not
	s.Clients.Add(cl)

	s.clearExpiredInflights(n)
	_, ok := cl.State.Inflight.Get(1)
	require.True(t, ok)
	require.Equal(t, 1, cl.State.Inflight.Len())
	require.Equal(t, []qosCall{{"dropped", packets.Pubrec, 1, true}}, h.take())
}

// Stored records of both spaces with the same packet id are restored side by side.
func TestServerLoadInflightBothSpaces(t *testing.T) {
	s := newServer()
	s.loadClients([]storage.Client{{ID: "mochi"}})
	s.loadInflight([]storage.Message{
		{Client: "mochi", PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "a/b", Payload: []byte("out")},
		{Client: "mochi", PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}},
	})
	cl, ok := s.Clients.Get("mochi")
	require.True(t, ok)
	out, ok := cl.State.Inflight.Get(1)
	require.True(t, ok)
	require.Equal(t, []byte("out"), out.Payload)
	_, ok = cl.State.Inflight.GetInbound(1)
	require.True(t, ok)
}
