package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	mpackets "github.com/mochi-mqtt/server/v2/packets"
)

// A standard MQTT 3.1.1 client with a persistent session keeps working across a broker
// restart while QoS 1 messages are in flight and queued for it. mosquitto_sub subscribes
// again on every reconnect, with its own next packet id (1, 2, ...); the broker's resent
// messages carry the broker's ids 1, 2, ... Client and server packet ids are separate
// (MQTT 3.1.1 §2.3.1), so the SUBSCRIBE must be granted. mochi v2.7.9 refused it with 0x91
// "packet identifier in use" (not even a 3.1.1 return code) and mosquitto_sub quit with
// "All subscription requests were denied.", leaving every later message undelivered
// (third_party/mochi-mqtt-server/PATCHES.md).
func TestMosquittoSubResubscribesAfterRestart(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Store = filepath.Join(t.TempDir(), "broker")
	b1 := start(t, cfg)
	addr := b1.Addr(ListenerTCP)
	host, port := hostPort(t, addr)

	const topic = "sensors/resub"
	sub := startTool(t, "mosquitto_sub", "-h", host, "-p", port, "-u", "root", "-P", "pw-root",
		"-i", "resub", "-c", "-q", "1", "-t", topic, "-d")
	sub.waitCount(t, "received SUBACK", 1)
	publish := func(b *running, payloads ...string) {
		t.Helper()
		for _, p := range payloads {
			if err := b.Publish(Message{Topic: topic, Payload: []byte(p), QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(b1, "m01") // delivered and acknowledged: packet id 1 is free again
	sub.waitCount(t, "m01", 1)

	// mosquitto_sub stops reading: m02..m05 are in flight (packet ids 2..5), unacknowledged.
	sub.signal(t, syscall.SIGSTOP)
	publish(b1, "m02", "m03", "m04", "m05")
	waitFor(t, "4 messages in flight for resub", func() bool {
		cl, ok := b1.mqtt.Clients.Get("resub")
		return ok && cl.State.Inflight.Len() == 4
	})
	b1.stop()

	// Same store, same address: mosquitto_sub reconnects to it by itself.
	cfg.Listen = addr
	b2 := start(t, cfg)
	publish(b2, "m06", "m07", "m08") // queued for the offline session: packet ids 1, 6, 7
	sub.signal(t, syscall.SIGCONT)

	// It reconnects, gets the resent messages, subscribes again and is granted.
	sub.waitCount(t, "sending SUBSCRIBE", 2)
	sub.waitCount(t, "received SUBACK", 2)
	publish(b2, "m09") // a message after the restart
	for _, p := range []string{"m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09"} {
		sub.waitCount(t, p, 1) // QoS 1: resent ones may arrive twice
	}
	out := sub.output()
	if strings.Contains(out, "denied") {
		t.Fatalf("mosquitto_sub was refused:\n%s", out)
	}
	// The point of the test: the second SUBSCRIBE's packet id was one the broker had in
	// flight to mosquitto_sub at that moment (resent with DUP set).
	mids := regexp.MustCompile(`sending SUBSCRIBE \(Mid: (\d+),`).FindAllStringSubmatch(out, -1)
	if len(mids) < 2 || !strings.Contains(out, "received PUBLISH (d1, q1, r0, m"+mids[1][1]+",") {
		t.Fatalf("the resubscription did not reuse a packet id in flight from the broker:\n%s", out)
	}
	sub.alive(t)
}

// A client's QoS 1 and QoS 2 publishes and the broker's QoS 1 publish to that client may
// carry the same packet id: both flows survive a restart and complete, each on its own.
// mochi v2.7.9 kept both under one in-flight entry and one store key: the client's QoS 1
// publish deleted the broker's PUBLISH from the session, the PUBREC of its QoS 2 publish
// replaced it in the store, and it was never delivered again.
func TestClientAndBrokerSamePacketIDAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Store = filepath.Join(t.TempDir(), "broker")
	const id = "agent-raw"
	restart := func(b *running) *running {
		t.Helper()
		b.stop()
		return start(t, cfg)
	}
	inflight := func(b *running) int {
		cl, ok := b.mqtt.Clients.Get(id)
		if !ok {
			t.Fatalf("session %s not restored", id)
		}
		return cl.State.Inflight.Len()
	}

	b := start(t, cfg)
	dev := rawDevice(t, b.Addr(ListenerTCP), id)
	dev.subscribe("sensors/to-agent", 1)
	if err := b.Publish(Message{Topic: "sensors/to-agent", Payload: []byte("to the agent"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if pk := dev.packet(); pk.FixedHeader.Type != mpackets.Publish || pk.PacketID != 1 {
		t.Fatalf("want the broker's PUBLISH 1, got %+v", pk)
	} // and not acknowledged yet
	dev.publish("sensors/from-agent", "reading", 1, false) // QoS 1 with the agent's own id 1
	dev.publishQos2("sensors/from-agent", "result", 1)     // then QoS 2 with it
	if pk := dev.packet(); pk.FixedHeader.Type != mpackets.Pubrec || pk.PacketID != 1 {
		t.Fatalf("want PUBREC 1, got %+v", pk)
	}

	b = restart(b)
	if n := inflight(b); n != 2 {
		t.Fatalf("%d in-flight records restored, want 2 (the broker's PUBLISH 1, its PUBREC 1)", n)
	}
	dev = rawDevice(t, b.Addr(ListenerTCP), id)
	var publish, pubrec bool
	for range 2 { // resent in any order
		pk := dev.packet()
		switch {
		case pk.FixedHeader.Type == mpackets.Publish && pk.PacketID == 1 && pk.FixedHeader.Dup && string(pk.Payload) == "to the agent":
			publish = true
		case pk.FixedHeader.Type == mpackets.Pubrec && pk.PacketID == 1:
			pubrec = true
		default:
			t.Fatalf("unexpected resend %+v", pk)
		}
	}
	if !publish || !pubrec {
		t.Fatalf("resent PUBLISH 1: %v, PUBREC 1: %v", publish, pubrec)
	}
	dev.ack(mpackets.Pubrel, 1)
	if pk := dev.packet(); pk.FixedHeader.Type != mpackets.Pubcomp || pk.PacketID != 1 {
		t.Fatalf("want PUBCOMP 1, got %+v", pk)
	}
	dev.ack(mpackets.Puback, 1)
	waitFor(t, "both flows complete", func() bool { return inflight(b) == 0 })

	b = restart(b) // both store records were deleted, each by its own flow
	if n := inflight(b); n != 0 {
		t.Fatalf("%d in-flight records restored after both flows completed", n)
	}
}

// subscribe sends a SUBSCRIBE with packet id 1 and waits for its SUBACK.
func (c *rawClient) subscribe(filter string, qos byte) {
	pk := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Subscribe, Qos: 1}, ProtocolVersion: 4,
		PacketID: 1, Filters: mpackets.Subscriptions{{Filter: filter, Qos: qos}}}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	c.write(buf.Bytes())
	if ack := c.packet(); ack.FixedHeader.Type != mpackets.Suback || len(ack.Payload) != 1 || ack.Payload[0] != qos {
		c.t.Fatalf("SUBACK %+v", ack)
	}
}

// publishQos2 sends a QoS 2 PUBLISH; the caller reads the PUBREC.
func (c *rawClient) publishQos2(topic, payload string, pid uint16) {
	pk := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Publish, Qos: 2},
		TopicName: topic, Payload: []byte(payload), PacketID: pid}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	c.write(buf.Bytes())
}

// ack sends a PUBACK, PUBREC, PUBREL or PUBCOMP for packet id pid.
func (c *rawClient) ack(typ byte, pid uint16) {
	b := []byte{typ << 4, 2, byte(pid >> 8), byte(pid)}
	if typ == mpackets.Pubrel {
		b[0] |= 0x02 // reserved flags of PUBREL
	}
	c.write(b)
}

// packet reads one packet: its type, flags and packet id, and for a PUBLISH its topic
// and payload; for other packets Payload is the rest after the packet id.
func (c *rawClient) packet() mpackets.Packet {
	c.t.Helper()
	h := c.read(1)
	n, mul := 0, 1
	for {
		d := c.read(1)[0]
		n += int(d&0x7f) * mul
		if d&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := c.read(n)
	pk := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: h[0] >> 4, Dup: h[0]&0x08 != 0, Qos: h[0] >> 1 & 3, Retain: h[0]&1 != 0}}
	if pk.FixedHeader.Type == mpackets.Publish {
		tl := int(binary.BigEndian.Uint16(body))
		pk.TopicName, body = string(body[2:2+tl]), body[2+tl:]
		if pk.FixedHeader.Qos == 0 {
			pk.Payload = body
			return pk
		}
	}
	if len(body) >= 2 {
		pk.PacketID, pk.Payload = binary.BigEndian.Uint16(body), body[2:]
	}
	return pk
}

// tool is a long-running command-line client; its stdout and stderr are collected line by
// line.
type tool struct {
	cmd   *exec.Cmd
	name  string
	mu    sync.Mutex
	lines []string
	done  chan struct{} // closed when the process has exited
}

// startTool starts a command-line tool that runs until the test ends. Its stdout is line
// buffered (stdbuf), so each line is seen when it is printed.
func startTool(t testing.TB, name string, args ...string) *tool {
	t.Helper()
	args = append([]string{"-oL", requireTool(t, name)}, args...)
	p := &tool{name: name, cmd: exec.Command(requireTool(t, "stdbuf"), args...), done: make(chan struct{})}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		_ = w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // also when stopped
		<-p.done
	})
	return p
}

func (p *tool) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitCount waits until at least n lines contain s; it fails if the tool exits first.
func (p *tool) waitCount(t testing.TB, s string, n int) {
	t.Helper()
	waitFor(t, p.name+" printing "+s, func() bool {
		p.mu.Lock()
		c := 0
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				c++
			}
		}
		p.mu.Unlock()
		if c >= n {
			return true
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q %d times:\n%s", p.name, p.cmd.ProcessState, s, n, p.output())
		default:
		}
		return false
	})
}

func (p *tool) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// alive fails the test if the tool has exited.
func (p *tool) alive(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited (%v):\n%s", p.name, p.cmd.ProcessState, p.output())
	default:
	}
}
