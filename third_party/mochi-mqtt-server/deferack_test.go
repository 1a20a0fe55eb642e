package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Deviceless patch 9: an OnPublish hook defers the acknowledgement of a client's QoS 1
// and 2 PUBLISHes (Client.DeferAck); the server keeps reading the client's in-flight
// window and writes the PUBACKs and PUBRECs in arrival order, whatever order the hook
// completes them in, and nothing to a connection that ended.

// deferHook defers the acknowledgement of every QoS 1/2 publish to a topic starting with
// "held/" and hands the completions to the test.
type deferHook struct {
	HookBase
	acks chan func(error)
	mu   sync.Mutex
	sent []packets.Packet // acknowledgements written, in order
}

func newDeferHook() *deferHook { return &deferHook{acks: make(chan func(error), 1000)} }

func (h *deferHook) ID() string { return "defer" }

func (h *deferHook) Provides(b byte) bool { return b == OnPublish || b == OnPacketSent }

func (h *deferHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	if bytes.HasPrefix([]byte(pk.TopicName), []byte("held/")) {
		if ack := cl.DeferAck(); ack != nil {
			if cl.DeferAck() != nil {
				panic("DeferAck claimed twice for one packet")
			}
			h.acks <- ack
		}
	}
	return pk, nil
}

func (h *deferHook) OnPacketSent(cl *Client, pk packets.Packet, b []byte) {
	if t := pk.FixedHeader.Type; t == packets.Puback || t == packets.Pubrec {
		h.mu.Lock()
		h.sent = append(h.sent, pk)
		h.mu.Unlock()
	}
}

func (h *deferHook) written() []packets.Packet {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]packets.Packet(nil), h.sent...)
}

// take waits for n deferred acknowledgements.
func (h *deferHook) take(t *testing.T, n int) []func(error) {
	t.Helper()
	var got []func(error)
	for len(got) < n {
		select {
		case a := <-h.acks:
			got = append(got, a)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d deferred acknowledgements", len(got), n)
		}
	}
	return got
}

// rawClient is one MQTT connection driven packet by packet over a pipe.
type rawClient struct {
	t    *testing.T
	v    byte
	conn net.Conn
	in   chan packets.Packet // packets the server wrote, decoded
	end  chan error          // the read side ended
}

func connectRaw(t *testing.T, s *Server, id string, version byte) *rawClient {
	t.Helper()
	r, w := net.Pipe()
	go func() { _ = s.EstablishConnection("tcp", r) }()
	c := &rawClient{t: t, v: version, conn: w, in: make(chan packets.Packet, 1000), end: make(chan error, 1)}
	go c.read(version)
	name := []byte("MQTT")
	if version == 3 {
		name = []byte("MQIsdp")
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: name, Clean: true, Keepalive: 60, ClientIdentifier: id}})
	ack := c.next()
	require.Equal(t, packets.Connack, ack.FixedHeader.Type)
	require.Equal(t, byte(0), ack.ReasonCode)
	return c
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	}
	require.NoError(c.t, err)
	_, err = c.conn.Write(buf.Bytes())
	require.NoError(c.t, err)
}

func (c *rawClient) publish(topic string, qos byte, id uint16) {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: c.v,
		TopicName: topic, PacketID: id, Payload: []byte("x")})
}

func (c *rawClient) read(version byte) {
	br := bufio.NewReader(c.conn)
	for {
		b, err := br.ReadByte()
		if err != nil {
			c.end <- err
			close(c.in)
			return
		}
		fh := packets.FixedHeader{}
		if err := fh.Decode(b); err != nil {
			c.end <- err
			close(c.in)
			return
		}
		n, _, err := packets.DecodeLength(br)
		if err != nil {
			c.end <- err
			close(c.in)
			return
		}
		fh.Remaining = n
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			c.end <- err
			close(c.in)
			return
		}
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: version}
		switch fh.Type {
		case packets.Connack:
			err = pk.ConnackDecode(body)
		case packets.Puback:
			err = pk.PubackDecode(body)
		case packets.Pubrec:
			err = pk.PubrecDecode(body)
		case packets.Pubcomp:
			err = pk.PubcompDecode(body)
		case packets.Disconnect:
			err = pk.DisconnectDecode(body)
		}
		if err != nil {
			c.end <- err
			close(c.in)
			return
		}
		c.in <- pk
	}
}

// next returns the next packet the server wrote.
func (c *rawClient) next() packets.Packet {
	c.t.Helper()
	select {
	case pk, ok := <-c.in:
		if !ok {
			c.t.Fatalf("connection closed: %v", <-c.end)
		}
		return pk
	case <-time.After(10 * time.Second):
		c.t.Fatal("no packet from the server")
	}
	return packets.Packet{}
}

// none checks that the server has written nothing (after a round trip through the
// server's read loop: a QoS 0 publish handled, then a PINGREQ answered).
func (c *rawClient) none() {
	c.t.Helper()
	_, err := c.conn.Write([]byte{packets.Pingreq << 4, 0})
	require.NoError(c.t, err)
	pk := c.next()
	require.Equal(c.t, packets.Pingresp, pk.FixedHeader.Type, "the server wrote %v before answering the ping", pk.FixedHeader.Type)
}

func deferServer(t *testing.T, receiveMaximum uint16) (*Server, *deferHook) {
	cc := NewDefaultServerCapabilities()
	cc.ReceiveMaximum = receiveMaximum
	s := New(&Options{Logger: logger, Capabilities: cc})
	require.NoError(t, s.AddHook(new(AllowHook), nil))
	h := newDeferHook()
	require.NoError(t, s.AddHook(h, nil))
	require.NoError(t, s.Serve())
	t.Cleanup(func() { _ = s.Close() })
	return s, h
}

func TestDeferAckInOrder(t *testing.T) {
	s, h := deferServer(t, 64)
	c := connectRaw(t, s, "c1", 5)
	defer c.conn.Close()

	// A window of 20: the server reads them all before any acknowledgement is out, and
	// a publish it need not hold (topic "now/...") waits behind the held ones.
	for i := uint16(1); i <= 20; i++ {
		topic := "held/t"
		if i%5 == 0 {
			topic = "now/t"
		}
		c.publish(topic, 1, i)
	}
	acks := h.take(t, 16)
	c.none()

	// Completed last to first: nothing goes out until the first is done.
	for i := len(acks) - 1; i >= 1; i-- {
		acks[i](nil)
	}
	c.none()
	acks[0](nil)
	for i := uint16(1); i <= 20; i++ {
		pk := c.next()
		require.Equal(t, packets.Puback, pk.FixedHeader.Type)
		require.Equal(t, i, pk.PacketID, "PUBACKs in the order of the PUBLISHes")
	}
	c.none()
	cl, _ := s.Clients.Get("c1")
	require.Equal(t, int32(64), atomic.LoadInt32(&cl.State.Inflight.receiveQuota), "the receive quota is back")
}

func TestDeferAckQos2(t *testing.T) {
	s, h := deferServer(t, 64)
	c := connectRaw(t, s, "c2", 5)
	defer c.conn.Close()
	c.publish("held/t", 2, 7)
	c.publish("held/t", 1, 8)
	acks := h.take(t, 2)
	c.none()
	acks[1](nil)
	c.none()
	acks[0](nil)
	rec := c.next()
	require.Equal(t, packets.Pubrec, rec.FixedHeader.Type)
	require.Equal(t, uint16(7), rec.PacketID)
	ack := c.next()
	require.Equal(t, packets.Puback, ack.FixedHeader.Type)
	require.Equal(t, uint16(8), ack.PacketID)

	// The QoS 2 flow goes on as usual.
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: 5, PacketID: 7})
	comp := c.next()
	require.Equal(t, packets.Pubcomp, comp.FixedHeader.Type)
	require.Equal(t, uint16(7), comp.PacketID)
}

// A hook that completes with an error: no acknowledgement, the client is disconnected
// with the reason after the acknowledgements before it (written together, in one batch
// with the refusal's DISCONNECT after them); those queued behind it are not written.
func TestDeferAckErrorDisconnects(t *testing.T) {
	s, h := deferServer(t, 64)
	c := connectRaw(t, s, "c3", 5)
	defer c.conn.Close()
	c.publish("held/t", 1, 1)
	c.publish("now/t", 1, 2)
	c.publish("held/t", 1, 3)
	c.publish("now/t", 1, 4)
	acks := h.take(t, 2)
	acks[1](errors.New("disk on fire"))
	acks[0](nil)
	for i := uint16(1); i <= 2; i++ {
		pk := c.next()
		require.Equal(t, packets.Puback, pk.FixedHeader.Type)
		require.Equal(t, i, pk.PacketID)
	}
	pk := c.next()
	require.Equal(t, packets.Disconnect, pk.FixedHeader.Type)
	require.Equal(t, packets.ErrUnspecifiedError.Code, pk.ReasonCode)
	_, ok := <-c.in
	require.False(t, ok, "connection closed after the DISCONNECT")
	require.Len(t, h.written(), 2)
}

// A connection that ends, or is taken over, with acknowledgements pending: completing
// them later writes nothing, and the new connection starts with its full quota.
func TestDeferAckConnectionGone(t *testing.T) {
	for _, how := range []string{"closed", "taken over"} {
		t.Run(how, func(t *testing.T) {
			s, h := deferServer(t, 4)
			c := connectRaw(t, s, "c4", 5)
			for i := uint16(1); i <= 4; i++ {
				c.publish("held/t", 1, i)
			}
			acks := h.take(t, 4)
			old, _ := s.Clients.Get("c4")
			if how == "closed" {
				_ = c.conn.Close()
			}
			c2 := connectRaw(t, s, "c4", 5)
			defer c2.conn.Close()
			require.Eventually(t, old.Closed, 5*time.Second, time.Millisecond)
			for _, a := range acks {
				a(nil)
				a(nil) // a second call does nothing
			}
			// Four more on the new connection: its quota is whole.
			for i := uint16(1); i <= 4; i++ {
				c2.publish("held/t", 1, i)
			}
			for _, a := range h.take(t, 4) {
				a(nil)
			}
			for i := uint16(1); i <= 4; i++ {
				require.Equal(t, i, c2.next().PacketID)
			}
			// OnPacketSent runs after the write the client saw.
			require.Eventually(t, func() bool { return len(h.written()) >= 4 }, 5*time.Second, time.Millisecond)
			c2.none()
			require.Len(t, h.written(), 4, "only the new connection's PUBACKs were written")
			for _, pk := range h.written() {
				require.Equal(t, packets.Puback, pk.FixedHeader.Type)
			}
		})
	}
}

// The receive maximum with acknowledgements deferred: an MQTT 5 client beyond it is
// disconnected (0x93), QoS 0 still passes; an MQTT 3.1.1 client, never told the limit,
// is read again once acknowledgements are out.
func TestDeferAckReceiveMaximum(t *testing.T) {
	t.Run("mqtt5", func(t *testing.T) {
		s, h := deferServer(t, 2)
		c := connectRaw(t, s, "c5", 5)
		defer c.conn.Close()
		c.publish("held/t", 1, 1)
		c.publish("held/t", 1, 2)
		h.take(t, 2)
		c.publish("held/t", 0, 0) // QoS 0 is not counted
		c.none()
		c.publish("held/t", 1, 3)
		pk := c.next()
		require.Equal(t, packets.Disconnect, pk.FixedHeader.Type)
		require.Equal(t, packets.ErrReceiveMaximum.Code, pk.ReasonCode)
	})
	// The quota is back before the PUBACK is out: a client sending its next PUBLISH as
	// soon as it reads the PUBACK is within the limit (written by another goroutine than
	// the read loop, the quota came back too late now and then: 0x93).
	t.Run("mqtt5 at the limit", func(t *testing.T) {
		s, h := deferServer(t, 1)
		c := connectRaw(t, s, "c7", 5)
		defer c.conn.Close()
		for i := uint16(1); i <= 300; i++ {
			c.publish("held/t", 1, i)
			go h.take(t, 1)[0](nil)
			pk := c.next()
			require.Equal(t, packets.Puback, pk.FixedHeader.Type, "message %d", i)
			require.Equal(t, i, pk.PacketID)
		}
	})
	t.Run("mqtt311", func(t *testing.T) {
		s, h := deferServer(t, 2)
		c := connectRaw(t, s, "c6", 4)
		defer c.conn.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := uint16(1); i <= 6; i++ {
				c.publish("held/t", 1, i)
			}
		}()
		for i := uint16(1); i <= 6; i += 2 {
			acks := h.take(t, 2)
			select {
			case a := <-h.acks:
				t.Fatalf("a third message read beyond the receive maximum (%p)", a)
			default:
			}
			acks[1](nil)
			acks[0](nil)
			for j := i; j < i+2; j++ {
				pk := c.next()
				require.Equal(t, packets.Puback, pk.FixedHeader.Type)
				require.Equal(t, j, pk.PacketID)
			}
		}
		<-done
		c.none()
	})
}
