package broker

// Benchmarks recorded in BENCHMARKS.md ("## Broker"). Run:
//
//	go test ./broker -run '^$' -bench . -benchtime 200000x
//
// Every benchmark uses the same load clients: a minimal MQTT 3.1.1 publisher that writes
// pre-encoded QoS 0 PUBLISH packets in batches, and a subscriber that only parses
// fixed headers and counts PUBLISH packets. They are this small so the broker, not the
// client library, is what is measured. The publisher keeps at most `window` messages
// ahead of what the receiving side has counted (closed loop), so no broker has to drop
// anything and every run delivers exactly b.N messages.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

const (
	benchTopic   = "greenhouse/gh1/temperature"
	benchWindow  = 512 // messages the publisher may be ahead of the receiver
	benchBatch   = 64  // messages per write
	benchPayload = `{"celsius":21.5,"humidity":48.2,"seq":0000000000,"unit":"C","ok":1}`
)

// BenchmarkIntakeQoS0: a network publisher into our broker, consumed in-process through
// an Intake (the engine's path).
func BenchmarkIntakeQoS0(b *testing.B) {
	cfg := Config{Listen: "127.0.0.1:0", AllowAnonymous: true}
	srv, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	in, err := srv.Intake("bench", IntakeOptions{Filters: []string{"greenhouse/#"}})
	if err != nil {
		b.Fatal(err)
	}
	r := startServer(b, srv)
	defer r.stop()
	var got atomic.Int64
	poke := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			batch, err := in.NextBatch(ctx)
			if err != nil {
				return
			}
			got.Add(int64(len(batch)))
			select {
			case poke <- struct{}{}:
			default:
			}
		}
	}()
	pub := rawConnect(b, r.Addr(ListenerTCP), "bench-pub")
	defer pub.Close()
	runLoad(b, pub, &got, poke)
	if st := in.Stats(); st.Dropped != 0 {
		b.Fatalf("intake dropped %d QoS 0 events", st.Dropped)
	}
}

// BenchmarkForwardQoS0: publisher -> broker -> subscriber over loopback, our broker and
// mosquitto 2.0 (started by the benchmark) with the same clients.
func BenchmarkForwardQoS0(b *testing.B) {
	b.Run("broker=deviceless", func(b *testing.B) {
		srv, err := New(Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		r := startServer(b, srv)
		defer r.stop()
		benchForward(b, r.Addr(ListenerTCP))
	})
	b.Run("broker=mosquitto", func(b *testing.B) {
		addr := startMosquitto(b)
		benchForward(b, addr)
	})
}

// BenchmarkForwardQoS0Tools: the same comparison with Debian's clients, mosquitto_pub -l
// (one message per stdin line, as fast as it can) and mosquitto_sub. Open loop: a broker
// may drop QoS 0 messages for a subscriber that falls behind; "lost_%" reports them.
func BenchmarkForwardQoS0Tools(b *testing.B) {
	for _, pending := range []int32{0, 262144} {
		b.Run("broker=deviceless/max_pending="+strconv.Itoa(int(pending)), func(b *testing.B) {
			cfg := Config{Listen: "127.0.0.1:0", AllowAnonymous: true}
			cfg.Limits.MaxPending = pending
			srv, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			r := startServer(b, srv)
			defer r.stop()
			benchForwardTools(b, r.Addr(ListenerTCP))
		})
	}
	b.Run("broker=mosquitto", func(b *testing.B) {
		benchForwardTools(b, startMosquitto(b))
	})
}

func benchForwardTools(b *testing.B, addr string) {
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := exec.CommandContext(ctx, requireTool(b, "mosquitto_sub"), "-h", host, "-p", port, "-t", "greenhouse/#", "-q", "0")
	out, err := sub.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); _ = sub.Wait() }()
	var got, last atomic.Int64 // data lines; unix nanos of the last one
	warm := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		warmed := false
		for sc.Scan() {
			if sc.Text() == "warm" {
				if !warmed {
					warmed = true
					close(warm)
				}
				continue
			}
			got.Add(1)
			last.Store(time.Now().UnixNano())
		}
	}()
	pub := rawConnect(b, addr, "bench-warm")
	defer pub.Close()
	for ready := false; !ready; {
		if _, err := pub.Write(publishPacket("greenhouse/warm", []byte("warm"))); err != nil {
			b.Fatal(err)
		}
		select {
		case <-warm:
			ready = true
		case <-time.After(20 * time.Millisecond):
		case <-time.After(deadline):
			b.Fatal("mosquitto_sub receives nothing")
		}
	}
	var lines bytes.Buffer
	for i := range b.N {
		fmt.Fprintf(&lines, "{\"celsius\":21.5,\"humidity\":48.2,\"seq\":%010d,\"unit\":\"C\",\"ok\":1}\n", i)
	}
	b.ResetTimer()
	start := time.Now()
	p := exec.Command(requireTool(b, "mosquitto_pub"), "-h", host, "-p", port, "-t", benchTopic, "-q", "0", "-l")
	p.Stdin = &lines
	if out, err := p.CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	// Wait for the rest, until everything arrived or nothing more arrives for a second.
	for prev := int64(-1); got.Load() < int64(b.N); {
		n := got.Load()
		if n == prev {
			break
		}
		prev = n
		time.Sleep(time.Second)
	}
	b.StopTimer()
	n := got.Load()
	elapsed := time.Duration(last.Load() - start.UnixNano())
	if n == 0 || elapsed <= 0 {
		b.Fatal("nothing received")
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(100*float64(int64(b.N)-n)/float64(b.N), "lost_%")
}

func benchForward(b *testing.B, addr string) {
	sub := rawConnect(b, addr, "bench-sub")
	defer sub.Close()
	rawSubscribe(b, sub, "greenhouse/#")
	var got atomic.Int64
	poke := make(chan struct{}, 1)
	go func() {
		rd := bufio.NewReaderSize(sub, 256<<10)
		for {
			typ, n, err := readHeader(rd)
			if err != nil {
				return
			}
			if _, err := rd.Discard(n); err != nil {
				return
			}
			if typ == 3 {
				if got.Add(1)%64 == 0 {
					select {
					case poke <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	pub := rawConnect(b, addr, "bench-pub")
	defer pub.Close()
	// Make sure the subscription is in place: one message must come through first.
	deadlineAt := time.Now().Add(deadline)
	for got.Load() == 0 {
		if time.Now().After(deadlineAt) {
			b.Fatal("subscriber receives nothing")
		}
		if _, err := pub.Write(publishPacket(benchTopic, []byte(benchPayload))); err != nil {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the warm-up messages drain
	got.Store(0)
	runLoad(b, pub, &got, poke)
}

// runLoad publishes b.N messages, at most benchWindow ahead of got, waits until got
// reaches b.N and reports msgs/s.
func runLoad(b *testing.B, pub net.Conn, got *atomic.Int64, poke <-chan struct{}) {
	b.Helper()
	n := int64(b.N)
	buf := make([]byte, 0, benchBatch*128)
	payload := []byte(benchPayload)
	seqAt := len(`{"celsius":21.5,"humidity":48.2,"seq":`)
	wait := func(target int64) {
		t := time.NewTimer(deadline)
		defer t.Stop()
		for got.Load() < target {
			select {
			case <-poke:
			case <-time.After(time.Millisecond):
			case <-t.C:
				b.Fatalf("stalled: %d of %d messages received", got.Load(), n)
			}
		}
	}
	b.SetBytes(int64(len(publishPacket(benchTopic, payload))))
	b.ResetTimer()
	start := time.Now()
	var sent int64
	for sent < n {
		buf = buf[:0]
		for i := 0; i < benchBatch && sent < n; i++ {
			copy(payload[seqAt:], fmt.Sprintf("%010d", sent))
			buf = appendPublish(buf, benchTopic, payload)
			sent++
		}
		wait(sent - benchWindow)
		if _, err := pub.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	wait(n)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
}

// rawConnect opens an MQTT 3.1.1 connection (anonymous, clean session).
func rawConnect(b *testing.B, addr, clientID string) net.Conn {
	b.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 4, 0x02, 0, 60) // level 4, clean session, keepalive 60s
	body = appendString(body, clientID)
	pk := append([]byte{0x10}, appendLength(nil, len(body))...)
	if _, err := c.Write(append(pk, body...)); err != nil {
		b.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		b.Fatalf("connack %x: %v", ack, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

func rawSubscribe(b *testing.B, c net.Conn, filter string) {
	b.Helper()
	body := []byte{0, 1}
	body = appendString(body, filter)
	body = append(body, 0) // QoS 0
	pk := append([]byte{0x82}, appendLength(nil, len(body))...)
	if _, err := c.Write(append(pk, body...)); err != nil {
		b.Fatal(err)
	}
	ack := make([]byte, 5)
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x90 || ack[4] != 0 {
		b.Fatalf("suback %x: %v", ack, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

func publishPacket(topic string, payload []byte) []byte { return appendPublish(nil, topic, payload) }

func appendPublish(buf []byte, topic string, payload []byte) []byte {
	buf = append(buf, 0x30)
	buf = appendLength(buf, 2+len(topic)+len(payload))
	buf = appendString(buf, topic)
	return append(buf, payload...)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(s)))
	return append(buf, s...)
}

func appendLength(buf []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		buf = append(buf, d)
		if n == 0 {
			return buf
		}
	}
}

// readHeader reads a fixed header: packet type and remaining length.
func readHeader(rd *bufio.Reader) (byte, int, error) {
	h, err := rd.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		d, err := rd.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			return h >> 4, n, nil
		}
		mult *= 128
	}
	return 0, 0, errors.New("malformed remaining length")
}

// startMosquitto starts /usr/sbin/mosquitto on a free loopback port and returns its
// address; it is stopped when the benchmark ends.
func startMosquitto(b *testing.B) string {
	b.Helper()
	bin := requireTool(b, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := b.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	err = os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\nset_tcp_nodelay true\n"), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	until := time.Now().Add(deadline)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(until) {
			b.Fatalf("mosquitto on %s not reachable: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
