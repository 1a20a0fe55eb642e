package mqtt

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Deviceless patch 5: QoS 1 messages published to a persistent session while its client
// connects again, taking the session over, all stay in the session, and a storage hook is
// not told to drop the ones the new connection took over. Before, a message could reach
// the old client after its in-flight messages had been copied to the new one, or before
// the new one was registered, and was dropped with the old client (600 of 1000 kept);
// and OnQosDropped deleted the store records of every message taken over.
func TestServerTakeoverKeepsMessagesPublishedMeanwhile(t *testing.T) {
	s := newServerWithInlineClient()
	h := new(qosHook)
	require.NoError(t, s.AddHook(h, nil))
	require.NoError(t, s.Serve())
	defer s.Close()

	// connect opens a connection for the persistent session "zen" (MQTT 3.1.1, clean
	// session off) and waits until the server has registered it; the peer never
	// acknowledges, so every QoS 1 message stays in flight.
	connect := func(prev *Client) (net.Conn, *Client) {
		r, w := net.Pipe()
		go func() { _ = s.EstablishConnection("tcp", r) }()
		go func() { _, _ = io.Copy(io.Discard, w) }()
		_, err := w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectMqtt311).RawBytes)
		require.NoError(t, err)
		for end := time.Now().Add(5 * time.Second); ; {
			if cl, ok := s.Clients.Get("zen"); ok && cl != prev {
				return w, cl
			}
			require.True(t, time.Now().Before(end), "connection not registered")
			time.Sleep(100 * time.Microsecond)
		}
	}
	conn, cl := connect(nil)
	sub := packets.Subscription{Filter: "t", Qos: 1}
	s.Topics.Subscribe("zen", sub)
	cl.State.Subscriptions.Add(sub.Filter, sub)

	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			_ = s.Publish("t", []byte(strconv.Itoa(i)), false, 1)
			if i%10 == 0 {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	takeovers := 0
	for running := true; running; takeovers++ {
		select {
		case <-done:
			running = false
		default:
		}
		if takeovers%2 == 0 {
			_ = conn.Close() // the connection dropped; else the live one is taken over
		}
		conn, cl = connect(cl)
		time.Sleep(time.Millisecond) // each takeover resends what is in flight
	}
	defer conn.Close()
	t.Logf("%d takeovers during %d publications", takeovers, n)
	require.Equal(t, n, cl.State.Inflight.Len(), "QoS 1 messages in the session after the takeovers")
	for _, c := range h.take() {
		require.NotEqual(t, "dropped", c.event, "a storage hook was told to drop message %d", c.id)
	}
}
