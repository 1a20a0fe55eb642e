package broker

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
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
