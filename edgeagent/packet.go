package edgeagent

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/protocol"
)

// The broker disconnects a client that sends a packet larger than its maximum, and the
// client's session then sends the same packet again at every reconnection: one such
// packet cuts the agent off for good. So the agent never publishes one: the maximum is
// each CONNACK's Maximum Packet Size, capped by limits.max_packet_size (which is all there
// is when the broker advertises none: mochi, so the Deviceless broker, enforces its limit
// without sending it); results that cannot fit are sent without their output, and a
// function's publish that cannot fit is refused.

// packetSize is the size of p's PUBLISH packet on the wire.
func packetSize(p *paho.Publish) int {
	n := 0
	for _, b := range p.Packet().Buffers() {
		n += len(b)
	}
	header := 2 // type and flags, one byte of remaining length
	for l := n; l >= 128; l >>= 7 {
		header++
	}
	return header + n
}

// maxPacket is the largest packet the broker accepts.
func (a *Agent) maxPacket() int { return int(a.maxPacketSize.Load()) }

// setMaxPacket records a CONNACK's Maximum Packet Size, capped by limits.max_packet_size.
func (a *Agent) setMaxPacket(ack *paho.Connack) {
	size := int64(a.cfg.Limits.MaxPacketSize)
	if ack != nil && ack.Properties != nil && ack.Properties.MaximumPacketSize != nil {
		size = min(size, int64(*ack.Properties.MaximumPacketSize))
	}
	if old := a.maxPacketSize.Swap(size); old != size {
		a.log.Info("broker maximum packet size", "bytes", size)
	}
}

// replyPacket is the PUBLISH of an encoded result to one requester.
func replyPacket(to replyTo, payload []byte) *paho.Publish {
	p := &paho.Publish{Topic: to.topic, Payload: payload, QoS: 1}
	if to.correlation != nil {
		p.Properties = &paho.PublishProperties{CorrelationData: to.correlation, ContentType: "application/json"}
	}
	return p
}

// fit returns the PUBLISH of payload, an encoded result, to one requester, or, when that
// is larger than the broker takes, of the result without its output, saying so ("output of
// N bytes exceeds the M byte limit of a result": M is the room the packet has for an
// output). nil when even that cannot fit (a response topic or correlation data near the
// maximum).
func (a *Agent) fit(to replyTo, payload []byte) *paho.Publish {
	p := replyPacket(to, payload)
	limit := a.maxPacket()
	if packetSize(p) <= limit {
		return p
	}
	var res protocol.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		a.log.Error("result too large for the broker, and not a result", "topic", to.topic, "bytes", len(payload), "err", err)
		return nil
	}
	n := len(res.Output)
	res.Output = nil
	cut := func(msg string) *paho.Publish {
		r := res
		r.Status, r.Error = protocol.StatusError, msg
		return replyPacket(to, a.encode(r))
	}
	empty := packetSize(cut(""))
	room := limit - empty - len(`,"output":`)
	msg := fmt.Sprintf("output of %d bytes exceeds the %d byte limit of a result (the broker's maximum packet size is %d)", n, max(room, 0), limit)
	if n == 0 {
		msg = fmt.Sprintf("result of %d bytes exceeds the broker's maximum packet size of %d", len(payload), limit)
	}
	if res.Error != "" {
		msg += "; " + res.Error
	}
	if room < len(msg) {
		msg = truncate(msg, max(room-len(`,"error":""`)-8, 0))
	}
	p = cut(msg)
	if packetSize(p) > limit {
		a.log.Error("result too large for the broker even without its output: dropped", "id", res.ID, "topic", to.topic,
			"max_packet_size", limit)
		a.metrics.dropped("too_large")
		return nil
	}
	a.log.Warn("result too large for the broker: sent without its output", "id", res.ID, "function", res.Function,
		"output_bytes", n, "max_packet_size", limit)
	return p
}

// encodeJSON is json.Marshal without HTML escaping: a function's output keeps its '<', '>'
// and '&' (json.Marshal writes each as six bytes).
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
