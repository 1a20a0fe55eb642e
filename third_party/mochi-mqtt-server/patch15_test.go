package mqtt

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// Deviceless patch 15: publishes are processed by pointer; hooks that implement
// PublishInPlace change the packet where it is.

// valueHook appends its user property through OnPublish's value in, value out.
type valueHook struct {
	HookBase
	key string
}

func (h *valueHook) ID() string           { return "value-" + h.key }
func (h *valueHook) Provides(b byte) bool { return b == OnPublish }
func (h *valueHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: h.key})
	return pk, nil
}

// inPlaceHook appends its user property where the packet is; its OnPublish must not run.
type inPlaceHook struct {
	HookBase
	key string
	err error
}

func (h *inPlaceHook) ID() string           { return "in-place-" + h.key }
func (h *inPlaceHook) Provides(b byte) bool { return b == OnPublish }
func (h *inPlaceHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	panic("OnPublish called on a hook that implements PublishInPlace")
}
func (h *inPlaceHook) OnPublishInPlace(cl *Client, pk *packets.Packet) error {
	pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: h.key})
	return h.err
}

func userKeys(pk packets.Packet) []string {
	var keys []string
	for _, u := range pk.Properties.User {
		keys = append(keys, u.Key)
	}
	return keys
}

func TestHooksOnPublishInPlace(t *testing.T) {
	h := new(Hooks)
	h.Log = logger
	require.NoError(t, h.Add(&valueHook{key: "a"}, nil))
	require.NoError(t, h.Add(&inPlaceHook{key: "b"}, nil))
	require.NoError(t, h.Add(&valueHook{key: "c"}, nil))
	pk := packets.Packet{TopicName: "a/b"}
	require.NoError(t, h.onPublish(new(Client), &pk))
	require.Equal(t, []string{"a", "b", "c"}, userKeys(pk), "every hook, in order, on the one packet")

	// An error stops the hooks; what the earlier ones did stays.
	h = new(Hooks)
	h.Log = logger
	require.NoError(t, h.Add(&valueHook{key: "a"}, nil))
	require.NoError(t, h.Add(&inPlaceHook{key: "b", err: packets.ErrRejectPacket}, nil))
	require.NoError(t, h.Add(&valueHook{key: "c"}, nil))
	pk = packets.Packet{TopicName: "a/b"}
	require.ErrorIs(t, h.onPublish(new(Client), &pk), packets.ErrRejectPacket)
	require.Equal(t, []string{"a", "b"}, userKeys(pk))

	// The exported value form still works for callers of Hooks.OnPublish.
	out, err := h.OnPublish(new(Client), packets.Packet{TopicName: "a/b"})
	require.ErrorIs(t, err, packets.ErrRejectPacket)
	require.Empty(t, userKeys(out), "OnPublish gives back the packet as it came on an error")
}

// A server's publish reaches its subscribers as the in-place hooks left it, and takes no
// allocation of its own for an inline subscriber at QoS 0 (the packet taken by pointer
// from a pool, not moved to the heap per publish).
func TestProcessPublishInPlace(t *testing.T) {
	s := newServerWithInlineClient()
	require.NoError(t, s.AddHook(&inPlaceHook{key: "hop"}, nil))
	var got []packets.Packet
	require.NoError(t, s.Subscribe("a/b", 1, func(cl *Client, sub packets.Subscription, pk packets.Packet) {
		got = append(got, pk)
	}))
	cl, _, _ := newTestClient()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b", Payload: []byte("x")}
	require.NoError(t, s.processPublish(cl, pk))
	require.Len(t, got, 1)
	require.Equal(t, []string{"hop"}, userKeys(got[0]))
	require.Equal(t, "x", string(got[0].Payload))
	require.Empty(t, pk.Properties.User, "the caller's packet is not changed")

	h := &countHook{}
	s = newServerWithInlineClient()
	require.NoError(t, s.AddHook(h, nil))
	n := 0
	require.NoError(t, s.Subscribe("a/b", 1, func(cl *Client, sub packets.Subscription, pk packets.Packet) { n++ }))
	allocs := testing.AllocsPerRun(1000, func() { _ = s.processPublish(cl, pk) })
	require.Equal(t, 1001, n)
	if !raceEnabled {
		require.Zero(t, allocs, "allocations per publish")
	}
	require.Equal(t, 1001, h.n)
}

type countHook struct {
	HookBase
	n int
}

func (h *countHook) ID() string           { return "count" }
func (h *countHook) Provides(b byte) bool { return b == OnPublish }
func (h *countHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	panic("OnPublish called on a hook that implements PublishInPlace")
}
func (h *countHook) OnPublishInPlace(cl *Client, pk *packets.Packet) error {
	h.n++
	return nil
}
