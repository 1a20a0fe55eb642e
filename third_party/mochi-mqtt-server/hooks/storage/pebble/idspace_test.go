// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2026 Deviceless

package pebble

import (
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// openAt opens a pebble hook on dir, closed when the test ends unless closed before.
func openAt(t *testing.T, dir string) *Hook {
	t.Helper()
	h := new(Hook)
	h.SetOpts(logger, nil)
	require.NoError(t, h.Init(&Options{Path: dir}))
	t.Cleanup(func() {
		if h.db != nil {
			_ = h.Stop()
		}
	})
	return h
}

// The client's QoS 2 publish 7 awaiting its PUBREL and the server's QoS 1 publish 7 to
// the same client are two in-flight records (client and server packet ids are separate):
// completing either one leaves the other in the store, across a restart. v2.7.9 kept both
// under one key, "IFM_<client>:7", so the second write replaced the first and completing
// either flow deleted both.
func TestInflightInboundAndOutboundSameID(t *testing.T) {
	cl := &mqtt.Client{ID: "cl1"}
	out := packets.Packet{
		PacketID:    7,
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "a/b",
		Payload:     []byte("to cl1"),
		Created:     time.Now().Unix(),
	}
	in := packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, Created: time.Now().Unix()}

	for _, tc := range []struct {
		name       string
		first      packets.Packet // stored first
		second     packets.Packet // stored second
		done, kept packets.Packet
	}{
		{"inbound completes", out, in, in, out},
		{"outbound completes", out, in, out, in},
		{"inbound completes, stored first", in, out, in, out},
		{"outbound completes, stored first", in, out, out, in},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			h := openAt(t, dir)
			h.OnQosPublish(cl, tc.first, time.Now().Unix(), 0)
			h.OnQosPublish(cl, tc.second, time.Now().Unix(), 0)
			h.OnQosComplete(cl, tc.done)
			require.NoError(t, h.Stop())

			h = openAt(t, dir) // the restart
			msgs, err := h.StoredInflightMessages()
			require.NoError(t, err)
			require.Len(t, msgs, 1, "records: %+v", msgs)
			require.Equal(t, "cl1", msgs[0].Client)
			require.Equal(t, tc.kept.PacketID, msgs[0].PacketID)
			require.Equal(t, tc.kept.FixedHeader.Type, msgs[0].FixedHeader.Type)
			require.Equal(t, tc.kept.Payload, msgs[0].Payload)
		})
	}
}

// Keys of both spaces cannot collide, whatever the client id.
func TestInflightKeySpaces(t *testing.T) {
	out := packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish}}
	in := packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}}
	require.Equal(t, storage.InflightKey+"_cl1:1", inflightKey(&mqtt.Client{ID: "cl1"}, out)) // unchanged
	require.Equal(t, storage.InflightKey+"_cl1:1:in", inflightKey(&mqtt.Client{ID: "cl1"}, in))
	keys := map[string]bool{}
	for _, id := range []string{"cl1", "cl1:1", "cl1:in", "cl1:1:in", ""} {
		for _, pk := range []packets.Packet{out, in} {
			k := inflightKey(&mqtt.Client{ID: id}, pk)
			require.False(t, keys[k], "duplicate key %q", k)
			keys[k] = true
		}
	}
}

// A store written by v2.7.9 keeps client-space records (the PUBREC awaiting a PUBREL, a
// PUBACK or PUBCOMP left by a crash) under the old key. Init moves them to their own key,
// once: they load, and completing them deletes them, while the server-space records,
// whose key did not change, stay.
func TestInflightOldKeysMigrated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	h := openAt(t, dir)
	old := func(client string, pk packets.Packet) {
		m := &storage.Message{
			ID:          storage.InflightKey + "_" + client + ":" + pk.FormatID(), // v2.7.9's key
			T:           storage.InflightKey,
			Client:      client,
			PacketID:    pk.PacketID,
			FixedHeader: pk.FixedHeader,
			TopicName:   pk.TopicName,
			Payload:     pk.Payload,
		}
		require.NoError(t, h.setKv(m.ID, m))
	}
	pubrec := packets.Packet{PacketID: 3, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}}
	publish := packets.Packet{PacketID: 4, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "a/b", Payload: []byte("queued")}
	old("cl1", pubrec)
	old("cl1", publish)
	old("cl2:x", pubrec) // a client id with the separator in it
	require.NoError(t, h.Stop())

	for restart := 0; restart < 2; restart++ { // the second Init finds nothing left to move
		h = openAt(t, dir)
		msgs, err := h.StoredInflightMessages()
		require.NoError(t, err)
		require.Len(t, msgs, 3, "restart %d: %+v", restart, msgs)
		for _, m := range msgs {
			require.Equal(t, inflightKey(&mqtt.Client{ID: m.Client}, m.ToPacket()), m.ID)
			require.NoError(t, h.getKv(m.ID, new(storage.Message)))
		}
		require.Error(t, h.getKv(storage.InflightKey+"_cl1:3", new(storage.Message)), "old key left behind")
		require.NoError(t, h.Stop())
	}

	h = openAt(t, dir)
	h.OnQosComplete(&mqtt.Client{ID: "cl1"}, pubrec)
	h.OnQosComplete(&mqtt.Client{ID: "cl2:x"}, pubrec)
	msgs, err := h.StoredInflightMessages()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, []byte("queued"), msgs[0].Payload)
}

// The Stored* reads close their iterators: an open one pins the store's version, so Close
// failed ("leaked iterators") and files made obsolete by compactions stayed on disk.
func TestStopAfterStoredReads(t *testing.T) {
	h := openAt(t, filepath.Join(t.TempDir(), "store"))
	h.OnSessionEstablished(client, packets.Packet{})
	h.OnQosPublish(client, packets.Packet{PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}}, 0, 0)
	_, err := h.StoredClients()
	require.NoError(t, err)
	_, err = h.StoredSubscriptions()
	require.NoError(t, err)
	_, err = h.StoredRetainedMessages()
	require.NoError(t, err)
	_, err = h.StoredInflightMessages()
	require.NoError(t, err)
	_, err = h.StoredSysInfo()
	require.NoError(t, err)
	require.NoError(t, h.Stop())
}
