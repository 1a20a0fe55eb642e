package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mpackets "github.com/mochi-mqtt/server/v2/packets"
)

// TestMain doubles as the broker process TestDurableIntakeSIGKILLKeepsAcknowledged kills.
func TestMain(m *testing.M) {
	if store := os.Getenv("BROKER_TEST_CRASH_STORE"); store != "" {
		os.Exit(crashBroker(store))
	}
	os.Exit(m.Run())
}

// crashBroker runs a broker with a durable intake (store_sync on) whose consumer takes
// every event and commits none, prints its address, and runs until it is killed.
func crashBroker(store string) int {
	cfg := baseConfig(nil)
	cfg.Store = store
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	in, err := srv.Intake("events", IntakeOptions{Durable: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			if _, err := in.NextBatch(context.Background()); err != nil {
				return
			}
		}
	}()
	go func() {
		<-srv.Ready()
		fmt.Printf("ADDR %s\n", srv.Addr(ListenerTCP))
	}()
	if err := srv.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// holdFirstSync makes the journal's first fsync wait for release.
func holdFirstSync(in *Intake) (release func()) {
	ch := make(chan struct{})
	var held atomic.Bool
	j := in.journal
	j.mu.Lock()
	j.syncFile = func(f *os.File) error {
		if held.CompareAndSwap(false, true) {
			<-ch
		}
		return f.Sync()
	}
	j.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// mosquitto_pub -q 1 (and -q 2) -l as a device into a durable intake with store_sync on: while the
// journal's first fsync is held, the broker goes on reading the publisher's in-flight
// window (no acknowledgement has gone out, none can: nothing is on disk); released, every
// message arrives once and in order, and mosquitto_pub sees every PUBACK (it exits 0).
func TestDurableIntakeMosquittoPubWindow(t *testing.T) {
	t.Parallel()
	// mosquitto_pub keeps up to 20 messages in flight (libmosquitto's default), with MQTT 5
	// as many as the broker's receive maximum allows. QoS 2: the PUBRECs are deferred.
	for _, c := range []struct {
		version, qos string
		window       int
	}{{"mqttv311", "1", 20}, {"mqttv5", "1", DefaultMaxInflight}, {"mqttv311", "2", 20}, {"mqttv5", "2", DefaultMaxInflight}} {
		version, window := c.version, c.window
		t.Run(version+"/qos"+c.qos, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.Store = filepath.Join(t.TempDir(), "broker")
			srv, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			in, err := srv.Intake("events", IntakeOptions{Durable: true})
			if err != nil {
				t.Fatal(err)
			}
			b := startServer(t, srv)
			release := holdFirstSync(in)
			defer release()

			const n = 500
			var lines strings.Builder
			for i := range n {
				fmt.Fprintf(&lines, "{\"seq\":%d}\n", i)
			}
			host, port, _ := net.SplitHostPort(b.Addr(ListenerTCP))
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			cmd := exec.CommandContext(ctx, requireTool(t, "mosquitto_pub"), "-h", host, "-p", port, "-V", version,
				"-u", "root", "-P", "pw-root", "-i", "pub-window", "-t", "sensors/w", "-q", c.qos, "-l", "-d")
			cmd.Stdin = strings.NewReader(lines.String())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			waitFor(t, fmt.Sprintf("the broker to read %d messages with the first fsync held", window), func() bool {
				return in.Stats().Received >= uint64(window)
			})
			if st := in.Stats(); st.Received > uint64(window) {
				t.Errorf("%d messages read with none acknowledged: mosquitto_pub's window is %d", st.Received, window)
			}
			select {
			case err := <-exited:
				t.Fatalf("mosquitto_pub ended with nothing on disk: %v: %s", err, out.String())
			default:
			}
			release()
			if err := <-exited; err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, out.String())
			}
			for i := range n {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				ev, err := in.Next(ctx)
				cancel()
				if err != nil {
					o := out.String()
					t.Fatalf("event %d: %v (stats %+v); mosquitto_pub -d: ...%s", i, err, in.Stats(), o[max(0, len(o)-2000):])
				}
				if want := fmt.Sprintf("{\"seq\":%d}", i); string(ev.Payload) != want || ev.Seq != uint64(i+1) {
					t.Fatalf("event %d: seq %d %s, want %s", i, ev.Seq, ev.Payload, want)
				}
			}
			t.Logf("%d messages, %d fsyncs", n, in.journal.syncs.Load())
		})
	}
}

// A broker process killed (SIGKILL) while a device publishes with 32 QoS 1 messages in
// flight: every message the device saw acknowledged is in the journal afterwards, in the
// order sent.
func TestDurableIntakeSIGKILLKeepsAcknowledged(t *testing.T) {
	t.Parallel()
	store := filepath.Join(t.TempDir(), "broker")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BROKER_TEST_CRASH_STORE="+store)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addrc <- a
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(deadline):
		t.Fatalf("the broker process did not start: %s", stderr.String())
	}

	dev := rawDevice(t, addr, "dev-kill")
	const window = 32
	sent := make(chan int, window) // sequence numbers in flight, in order
	var acked atomic.Int64         // messages 0..acked-1 acknowledged
	readDone := make(chan error, 1)
	readerGone := make(chan struct{})
	go func() {
		defer close(readerGone)
		ack := make([]byte, 4)
		for seq := range sent {
			if _, err := io.ReadFull(dev.conn, ack); err != nil {
				readDone <- err
				return
			}
			if ack[0] != 0x40 || int(uint16(ack[2])<<8|uint16(ack[3])) != seq%65535+1 {
				readDone <- fmt.Errorf("PUBACK % x for message %d", ack, seq)
				return
			}
			acked.Store(int64(seq + 1))
		}
		readDone <- nil
	}()
	_ = dev.conn.SetReadDeadline(time.Time{})
	writeErr := make(chan error, 1)
	go func() {
		defer close(sent)
		for seq := 0; ; seq++ {
			pk := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Publish, Qos: 1},
				TopicName: "sensors/kill", Payload: []byte(strconv.Itoa(seq)), PacketID: uint16(seq%65535 + 1)}
			var buf bytes.Buffer
			if err := pk.PublishEncode(&buf); err != nil {
				writeErr <- err
				return
			}
			select {
			case sent <- seq: // blocks while the window is full
			case <-readerGone:
				writeErr <- nil // the broker is gone
				return
			}
			if _, err := dev.conn.Write(buf.Bytes()); err != nil {
				writeErr <- nil // the broker is gone
				return
			}
		}
	}()
	const before = 3000
	waitFor(t, fmt.Sprintf("%d messages acknowledged", before), func() bool { return acked.Load() >= before })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if err := <-readDone; err == nil {
		t.Fatal("the device read every PUBACK of an endless stream")
	}
	got := int(acked.Load())

	_, pending, err := openJournal(store+"-intake-events", true, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) < got {
		t.Fatalf("%d messages acknowledged, %d in the journal after the kill", got, len(pending))
	}
	for i, ev := range pending {
		if string(ev.Payload) != strconv.Itoa(i) {
			t.Fatalf("journal event %d: %q, want %d (in the order sent)", i, ev.Payload, i)
		}
	}
	t.Logf("%d acknowledged before the kill, %d in the journal", got, len(pending))
}

// The journal's group commit: one fsync covers every record written before it, the
// waiters hear of it (in order), a failed fsync reaches its waiters, and close completes
// the waiters its own fsync covered and refuses later ones.
func TestJournalGroupCommit(t *testing.T) {
	t.Parallel()
	j, _, err := openJournal(filepath.Join(t.TempDir(), "j"), true, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	record := func(i int) uint64 {
		t.Helper()
		ev := Event{Topic: "t", Payload: []byte(strconv.Itoa(i)), QoS: 1}
		seq, err := j.record(&ev, "dev", uint16(i), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	hold := make(chan struct{})
	syncErr := make(chan error, 10)
	j.mu.Lock()
	j.syncFile = func(f *os.File) error {
		<-hold
		select {
		case err := <-syncErr:
			return err
		default:
		}
		return f.Sync()
	}
	j.mu.Unlock()

	done := make(chan uint64, 10)
	wait := func(seq uint64) {
		j.whenSynced(seq, func(err error) {
			if err != nil {
				t.Errorf("seq %d: %v", seq, err)
			}
			done <- seq
		})
	}
	seqs := []uint64{record(1), record(2), record(3)}
	for _, s := range seqs {
		wait(s)
	}
	select {
	case s := <-done:
		t.Fatalf("seq %d completed before the fsync", s)
	default:
	}
	hold <- struct{}{}
	for _, want := range seqs {
		if got := <-done; got != want {
			t.Fatalf("completed %d, want %d (in order)", got, want)
		}
	}
	if n := j.syncs.Load(); n != 1 {
		t.Errorf("%d fsyncs for three records written before the first, want 1", n)
	}
	wait(seqs[2]) // on disk already: at once
	if got := <-done; got != seqs[2] {
		t.Fatalf("completed %d", got)
	}

	// A failed fsync reaches its waiter, wrapped.
	failed := make(chan error, 1)
	s4 := record(4)
	syncErr <- fmt.Errorf("disk on fire")
	j.whenSynced(s4, func(err error) { failed <- err })
	hold <- struct{}{}
	if err := <-failed; err == nil || !strings.Contains(err.Error(), "journal: sync: disk on fire") {
		t.Fatalf("failed fsync: %v", err)
	}

	// Close while the loop's fsync is held: close's own fsync covers seq 5.
	s5 := record(5)
	wait(s5)
	closed := make(chan error, 1)
	go func() { closed <- j.close() }()
	waitFor(t, "close to sync", func() bool {
		j.smu.Lock()
		defer j.smu.Unlock()
		return j.synced >= s5
	})
	close(hold) // the loop's fsync returns (the file is closed) and the loop ends
	if got := <-done; got != s5 {
		t.Fatalf("completed %d, want %d", got, s5)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	j.whenSynced(s5+1, func(err error) { failed <- err })
	if err := <-failed; err != ErrIntakeClosed {
		t.Fatalf("after close: %v, want ErrIntakeClosed", err)
	}
}
