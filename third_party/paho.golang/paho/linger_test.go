package paho

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// Deviceless patch 2 (PATCHES.md): Disconnect, with the server still sending, used to close
// the socket with unread data in it; the kernel then resets the connection and drops what
// was not transmitted yet: the acknowledgements flushed a moment before, and the
// DISCONNECT. Over real TCP, a server that floods QoS 1 messages must still read every
// acknowledgement the client released and the DISCONNECT after them.
func TestDisconnectLingersUntilTheServerCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type seen struct {
		pubacks    map[uint16]bool
		disconnect bool
		err        error
	}
	result := make(chan seen, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			result <- seen{err: err}
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		if _, err := packets.ReadPacket(r); err != nil { // CONNECT
			result <- seen{err: err}
			return
		}
		if _, err := (&packets.Connack{Properties: &packets.Properties{}}).WriteTo(conn); err != nil {
			result <- seen{err: err}
			return
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the flood: until the client goes away
			defer wg.Done()
			payload := make([]byte, 1024)
			for i := 1; i <= 60000; i++ {
				p := &packets.Publish{PacketID: uint16(i), QoS: 1, Topic: "flood", Payload: payload, Properties: &packets.Properties{}}
				if _, err := p.WriteTo(conn); err != nil {
					return
				}
			}
		}()
		s := seen{pubacks: map[uint16]bool{}}
		for {
			cp, err := packets.ReadPacket(r)
			if err != nil {
				s.err = err
				break
			}
			switch p := cp.Content.(type) {
			case *packets.Puback:
				s.pubacks[p.PacketID] = true
			case *packets.Disconnect:
				s.disconnect = true
			}
			if s.disconnect {
				break // as brokers do: close once the client said goodbye
			}
		}
		conn.Close()
		wg.Wait()
		result <- s
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []uint16
	enough := make(chan struct{})
	var once sync.Once
	var c *Client
	c = NewClient(ClientConfig{
		Conn:                       packets.NewThreadSafeConn(conn),
		EnableManualAcknowledgment: true,
		SendAcksInterval:           time.Hour, // only Disconnect sends them
		OnPublishReceived: []func(PublishReceived) (bool, error){func(pr PublishReceived) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < 500 {
				if err := pr.Client.Ack(pr.Packet); err == nil {
					acked = append(acked, pr.Packet.PacketID)
				}
				if len(acked) == 500 {
					once.Do(func() { close(enough) })
				}
			}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &Connect{KeepAlive: 30, ClientID: "linger", CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-enough:
	case <-ctx.Done():
		t.Fatal("the flood did not arrive")
	}
	if err := c.Disconnect(&Disconnect{}); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	s := <-result
	if !s.disconnect {
		t.Fatalf("the server never read the DISCONNECT (read error %v; %d acknowledgements read)", s.err, len(s.pubacks))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		if !s.pubacks[id] {
			t.Fatalf("the acknowledgement of %d was lost (%d of %d read)", id, len(s.pubacks), len(acked))
		}
	}
}
