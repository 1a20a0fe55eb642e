package broker

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Dropped is a message the broker dropped instead of queueing it for one subscriber,
// because that client's queue (limits.max_queued) or outbound buffer
// (limits.max_pending) was full. The broker counts it
// (deviceless_broker_messages_dropped_total); Server.OnDropped tells a publisher that
// must know, such as the engine about an invocation an agent will never see.
type Dropped struct {
	Client          string // the subscriber's client id
	Topic           string
	CorrelationData []byte
}

// OnDropped makes the broker call f for every message dropped for a subscriber. Call it
// before Run. f runs on the publisher's goroutine, within Server.Publish for the
// engine's own messages: it must return quickly and must not publish.
func (s *Server) OnDropped(f func(Dropped)) {
	s.dropped = f
}

// dropHook reports dropped messages to Server.OnDropped's function.
type dropHook struct {
	mqtt.HookBase
	s *Server
}

func (h *dropHook) ID() string { return "deviceless-dropped" }

func (h *dropHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublishDropped}, []byte{b})
}

// OnPublishDropped is called by mochi for a full outbound buffer and (fork patch 10) for
// a full queue or exhausted packet ids.
func (h *dropHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if f := h.s.dropped; f != nil {
		f(Dropped{Client: cl.ID, Topic: pk.TopicName, CorrelationData: pk.Properties.CorrelationData})
	}
}
