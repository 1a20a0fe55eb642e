package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
)

func openTestJournal(t *testing.T, dir string) (*journal, []Event) {
	t.Helper()
	j, pending, err := openJournal(dir, false, testLogger(t))
	if err != nil {
		t.Fatalf("openJournal: %v", err)
	}
	return j, pending
}

func appendN(t *testing.T, j *journal, from, n int) []Event {
	t.Helper()
	var evs []Event
	for i := from; i < from+n; i++ {
		ev := Event{Topic: fmt.Sprintf("sensors/%d", i), Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), QoS: 1,
			ClientID: "dev", Username: "sensor1", Received: time.Unix(1700000000, int64(i)),
			ResponseTopic: "r/t", CorrelationData: []byte{byte(i)}, ContentType: "application/json",
			Expiry: 5 * time.Second, UserProperties: []UserProperty{{Key: "k", Value: "v"}}}
		if err := j.append(&ev, "dev", uint16(i%65535+1), false, nil); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestJournalRedeliversWhatIsNotCommitted(t *testing.T) {
	dir := t.TempDir()
	j, pending := openTestJournal(t, dir)
	if len(pending) != 0 {
		t.Fatalf("new journal: %d pending", len(pending))
	}
	evs := appendN(t, j, 0, 10)
	if err := j.commit(evs[5].Seq); err != nil {
		t.Fatal(err)
	}
	// No close: the process dies.
	j2, pending := openTestJournal(t, dir)
	if len(pending) != 4 {
		t.Fatalf("pending after reopen: %d, want 4 (events 7..10)", len(pending))
	}
	for i, got := range pending {
		want := evs[6+i]
		want.Redelivered = true
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("event %d read back:\n got %+v\nwant %+v", i, got, want)
		}
	}
	// Sequence numbers and ids go on from where they were.
	more := appendN(t, j2, 10, 1)
	if more[0].Seq != 11 || more[0].ID == evs[9].ID || more[0].ID != j2.eventID(11) {
		t.Errorf("next event after reopen: seq %d id %s (previous %s)", more[0].Seq, more[0].ID, evs[9].ID)
	}
	if err := j2.commit(more[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := j2.close(); err != nil {
		t.Fatal(err)
	}
	_, pending = openTestJournal(t, dir)
	if len(pending) != 0 {
		t.Errorf("all committed, yet %d pending", len(pending))
	}
}

// Issue 12: an event's ID names its invocations and actuations, which agents see. It stays
// the same when the event is delivered again after a restart, but nobody can derive one
// event's ID from another's (it was journal id + "-" + sequence number): an HMAC under the
// journal's key, a secret file in the journal's folder.
func TestJournalEventIDsAreKeyed(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	evs := appendN(t, j, 0, 3)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, ev := range evs {
		if !hexID.MatchString(ev.ID) || strings.Contains(ev.ID, j.id) {
			t.Errorf("event %d: id %q is not 32 hex digits unrelated to the journal id %q", ev.Seq, ev.ID, j.id)
		}
	}
	if evs[0].ID == evs[1].ID {
		t.Fatalf("two events, one id %s", evs[0].ID)
	}
	fi, err := os.Stat(filepath.Join(dir, "key"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 32 {
		t.Fatalf("journal key file: %v, %v", fi, err)
	}
	// Delivered again after a crash: the same ids.
	_, pending := openTestJournal(t, dir)
	if len(pending) != 3 {
		t.Fatalf("pending %d, want 3", len(pending))
	}
	for i, ev := range pending {
		if ev.ID != evs[i].ID {
			t.Errorf("event %d after reopen: id %s, was %s", ev.Seq, ev.ID, evs[i].ID)
		}
	}
	// Another journal (another key): other ids for the same sequence numbers, even with
	// the same journal id.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "id"), []byte(j.id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	j3, _ := openTestJournal(t, other)
	if ev := appendN(t, j3, 0, 1); ev[0].Seq != 1 || ev[0].ID == evs[0].ID {
		t.Errorf("another journal's first event: seq %d id %s, the first journal's %s", ev[0].Seq, ev[0].ID, evs[0].ID)
	}
}

func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	evs := appendN(t, j, 0, 3)
	seg := j.segs[len(j.segs)-1].path
	// A power cut in the middle of the next record.
	var rec []byte
	rec = encodeEvent(rec, 4, &evs[0], true, 1, false)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(rec[:len(rec)/2])
	_ = f.Close()
	j2, pending := openTestJournal(t, dir)
	if len(pending) != 3 {
		t.Fatalf("pending: %d, want the 3 whole events", len(pending))
	}
	if more := appendN(t, j2, 3, 1); more[0].Seq != 4 {
		t.Errorf("seq after the torn record: %d, want 4", more[0].Seq)
	}
	_, pending = openTestJournal(t, dir)
	if len(pending) != 4 {
		t.Errorf("pending after appending past the cut: %d, want 4", len(pending))
	}
}

// A damaged length in the last record's header is found without allocating it.
func TestJournalTornLength(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	appendN(t, j, 0, 1)
	seg := j.segs[len(j.segs)-1].path
	_ = j.close()
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0, 0, 0, 16, 1, 2, 3, 4, recEvent, 2}) // 256 MiB, then 2 bytes
	_ = f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, pending := openTestJournal(t, dir)
	runtime.ReadMemStats(&after)
	if len(pending) != 1 {
		t.Errorf("pending: %d, want the whole event", len(pending))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("open allocated %d MiB for a 256 MiB length in a 10-byte tail", n>>20)
	}
}

func TestJournalSegmentsRollAndGo(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	j.segmentSize = 1 << 10
	evs := appendN(t, j, 0, 100)
	if len(j.segs) < 5 {
		t.Fatalf("%d segments for 100 events at 1 KiB each", len(j.segs))
	}
	if err := j.commit(evs[49].Seq); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(files) != len(j.segs) || j.segs[0].first > evs[49].Seq+1 {
		t.Errorf("after committing half: %d files, %d segments, oldest starts at %d", len(files), len(j.segs), j.segs[0].first)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j, pending := openTestJournal(t, dir)
	if len(pending) != 50 || pending[0].Seq != evs[50].Seq {
		t.Fatalf("pending: %d from seq %d, want 50 from %d", len(pending), pending[0].Seq, evs[50].Seq)
	}
	if err := j.commit(evs[99].Seq); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(files) != 1 {
		t.Errorf("everything committed: %d segment files left, want 1", len(files))
	}
}

func TestJournalRecognisesResends(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	ev := Event{Topic: "sensors/a", Payload: []byte("1"), QoS: 1, ClientID: "dev"}
	if err := j.append(&ev, "dev", 7, false, nil); err != nil {
		t.Fatal(err)
	}
	again := ev
	if err := j.append(&again, "dev", 7, true, nil); err != errResend {
		t.Errorf("DUP resend of a journaled message: %v, want errResend", err)
	}
	for _, c := range []struct {
		what   string
		client string
		pid    uint16
		dup    bool
		pay    string
	}{
		{"same packet id, not DUP (a new message)", "dev", 7, false, "1"},
		{"DUP, other payload", "dev", 7, true, "2"},
		{"DUP, other packet id", "dev", 8, true, "1"},
		{"DUP, other client", "dev2", 7, true, "1"},
	} {
		e := Event{Topic: "sensors/a", Payload: []byte(c.pay), QoS: 1, ClientID: c.client}
		if err := j.append(&e, c.client, c.pid, c.dup, nil); err != nil {
			t.Errorf("%s: %v, want it journaled", c.what, err)
		}
	}
	// The memory survives a restart.
	j2, _ := openTestJournal(t, dir)
	e := Event{Topic: "sensors/a", Payload: []byte("2"), QoS: 1, ClientID: "dev"}
	if err := j2.append(&e, "dev", 7, true, nil); err != errResend {
		t.Errorf("resend after a restart: %v, want errResend", err)
	}
}

// FuzzJournalOpen feeds arbitrary segment contents to openJournal, as they are or (framed)
// as record bodies framed with valid lengths and checksums, so that the fuzzer reaches the
// record decoder past the checksum. Open never fails, torn tail or not; every event it
// returns comes from a whole, checksummed event record; an event appended afterwards is
// pending after a reopen, after the same events as before; and whole records followed by a
// torn one give what the whole records alone give.
func FuzzJournalOpen(f *testing.F) {
	ev := Event{Topic: "t", Payload: []byte("p"), QoS: 1, ClientID: "c", UserProperties: []UserProperty{{"k", "v"}}}
	recs := [][]byte{
		encodeEvent(nil, 1, &ev, true, 1, false),
		appendRecord(nil, recCommit, 1, nil),
		encodeEvent(nil, 2, &ev, false, 2, true),
	}
	var raw, chunks []byte
	for _, r := range recs {
		raw = append(raw, r...)
		chunks = append(append(chunks, byte(len(r)-8)), r[8:]...)
	}
	f.Add(raw, false)
	f.Add(raw[:len(raw)-3], false)
	f.Add([]byte{}, false)
	f.Add(chunks, true)
	f.Add(chunks[:len(chunks)-3], true)
	later := Event{Topic: "later/t", Payload: []byte(`{"n":1}`), QoS: 1, Retain: true, ClientID: "dev", Username: "sensor1",
		Received: time.Unix(1700000000, 5), ResponseTopic: "r/t", CorrelationData: []byte{1}, ContentType: "application/json",
		Expiry: 5 * time.Second, UserProperties: []UserProperty{{Key: "k", Value: "v"}}}
	torn := encodeEvent(nil, 1<<40, &later, true, 9, false)
	jdir := newFuzzJournal(f)
	f.Fuzz(func(t *testing.T, data []byte, framed bool) {
		seg := data
		if framed {
			seg = frameChunks(data)
		}
		dir := jdir.with(t, seg)
		j, pending, err := openJournal(dir, false, testLogger(t))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		bodies, whole := wholeRecords(seg)
		events := map[uint64]bool{}
		for _, b := range bodies {
			if seq, n := binary.Uvarint(b[1:]); b[0] == recEvent && n > 0 {
				events[seq] = true
			}
		}
		for _, e := range pending {
			if !events[e.Seq] || e.ID != j.eventID(e.Seq) || !e.Redelivered {
				t.Fatalf("pending event %+v: not from a whole event record (seqs %v) or badly named", e, events)
			}
		}
		want := pending
		if j.seq < math.MaxUint64 { // the next sequence number would wrap
			ev := later
			if err := j.append(&ev, "", 0, false, nil); err != nil {
				t.Fatalf("append after open: %v", err)
			}
			ev.Redelivered = true
			want = append(slices.Clip(pending), ev)
		}
		_ = j.close()
		_, again, err := openJournal(dir, false, testLogger(t))
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if diff := cmp.Diff(want, again); diff != "" {
			t.Fatalf("reopen (-want +got):\n%s", diff)
		}
		if whole == len(seg) {
			k := 1 + len(seg)%(len(torn)-1)
			j2, cut, err := openJournal(jdir.with(t, append(slices.Clip(seg), torn[:k]...)), false, testLogger(t))
			if err != nil {
				t.Fatalf("open with %d bytes of a torn record: %v", k, err)
			}
			_ = j2.close()
			if diff := cmp.Diff(pending, cut); diff != "" {
				t.Fatalf("a torn record of %d bytes after whole ones changed the pending events (-whole +torn):\n%s", k, diff)
			}
		}
	})
}

// fuzzJournal is a journal folder for one fuzz worker, reused from input to input:
// creating and removing folders costs more than the rest of an input on some disks.
type fuzzJournal string

func newFuzzJournal(f *testing.F) fuzzJournal {
	dir := filepath.Join(f.TempDir(), "journal")
	if err := os.Mkdir(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	// An id, written without the fsync openJournal would make.
	if err := os.WriteFile(filepath.Join(dir, "id"), []byte("fuzz\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	return fuzzJournal(dir)
}

// with returns the folder holding seg as its only segment.
func (d fuzzJournal) with(t *testing.T, seg []byte) string {
	dir := string(d)
	old, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, name := range old {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.log"), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// frameChunks reads data as chunks (a length byte, then as many bytes as there are up to
// it) and frames each as a record with a valid length and checksum.
func frameChunks(data []byte) []byte {
	var seg []byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		start := len(seg)
		seg = append(append(seg, 0, 0, 0, 0, 0, 0, 0, 0), data[1:1+n]...)
		seg = frame(seg, start)
		data = data[1+n:]
	}
	return seg
}

// wholeRecords walks seg as the journal's framing - length (uint32 LE), CRC-32C of the
// body (uint32 LE), body - up to the first record cut short or failing its checksum, and
// returns the bodies before it and where they end.
func wholeRecords(seg []byte) (bodies [][]byte, end int) {
	table := crc32.MakeTable(crc32.Castagnoli)
	for len(seg)-end >= 8 {
		n := int(binary.LittleEndian.Uint32(seg[end:]))
		if n == 0 || n > len(seg)-end-8 {
			break
		}
		body := seg[end+8 : end+8+n]
		if crc32.Checksum(body, table) != binary.LittleEndian.Uint32(seg[end+4:]) {
			break
		}
		bodies = append(bodies, body)
		end += 8 + n
	}
	return bodies, end
}

// rawClient speaks MQTT 3.1.1 over TCP with hand-made packets, so a test can send a
// PUBLISH with the DUP flag as a device does after a reconnect.
type rawClient struct {
	t    *testing.T
	conn net.Conn
}

func rawDevice(t *testing.T, addr, id string) *rawClient {
	t.Helper()
	conn := dialTCP(t, addr)
	t.Cleanup(func() { _ = conn.Close() })
	pk := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Connect}, ProtocolVersion: 4,
		Connect: mpackets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: false, ClientIdentifier: id,
			Keepalive: 30, UsernameFlag: true, Username: []byte("root"), PasswordFlag: true, Password: []byte("pw-root")}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, conn: conn}
	c.write(buf.Bytes())
	if ack := c.read(4); ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x", ack)
	}
	return c
}

func (c *rawClient) write(b []byte) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(deadline))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) read(n int) []byte {
	b := make([]byte, n)
	_ = c.conn.SetReadDeadline(time.Now().Add(deadline))
	if _, err := io.ReadFull(c.conn, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

// publish sends a QoS 1 PUBLISH and waits for its PUBACK.
func (c *rawClient) publish(topic, payload string, pid uint16, dup bool) {
	pk := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Publish, Qos: 1, Dup: dup},
		TopicName: topic, Payload: []byte(payload), PacketID: pid}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	c.write(buf.Bytes())
	if ack := c.read(4); ack[0] != 0x40 || uint16(ack[2])<<8|uint16(ack[3]) != pid {
		c.t.Fatalf("PUBACK for %d: % x", pid, ack)
	}
}

// A durable intake: QoS 1 events acknowledged but not committed come back after a
// restart, with the same ids; committed ones do not; a device's DUP resend of an
// acknowledged message is acknowledged and not delivered again, before and after the
// restart; QoS 0 events and excluded topics are not journaled.
func TestDurableIntake(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Store = filepath.Join(t.TempDir(), "broker")
	srv, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	in, err := srv.Intake("events", IntakeOptions{Filters: []string{"#"}, Exclude: []string{"internal/#"}, Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Intake("other", IntakeOptions{Durable: true}); err == nil {
		t.Error("a second durable intake was accepted")
	}
	b1 := startServer(t, srv)
	if _, err := srv.Intake("late", IntakeOptions{Durable: true}); err == nil {
		t.Error("a durable intake created after Run was accepted")
	}
	dev := rawDevice(t, b1.Addr(ListenerTCP), "dev-raw")
	ctx := testContext(t)
	next := func(in *Intake) Event {
		t.Helper()
		ev, err := in.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	for i := 1; i <= 4; i++ {
		dev.publish("sensors/x", fmt.Sprintf(`{"n":%d}`, i), uint16(i), false)
	}
	dev.publish("sensors/x", `{"n":4}`, 4, true) // the PUBACK was lost: a resend
	dev.publish("internal/y", `{}`, 5, false)
	pub := mustConnect(t, b1.Addr(ListenerTCP), connOpts{clientID: "pub0", user: "root"})
	pub.mustPublish(t, "sensors/q0", "qos0", 0)
	var ids []string
	for i := 1; i <= 4; i++ {
		ev := next(in)
		if ev.Seq == 0 || ev.ID == "" || ev.Redelivered || string(ev.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
		ids = append(ids, ev.ID)
		if i == 2 {
			if err := in.Commit(ev.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ev := next(in); ev.Topic != "sensors/q0" || ev.Seq != 0 {
		t.Errorf("after the QoS 1 events: %+v, want the QoS 0 event, not journaled (no resend, no internal/y)", ev)
	}
	if st := in.Stats(); st.Resends != 1 {
		t.Errorf("resends: %d, want 1", st.Resends)
	}
	// The store as a crash would leave it (a graceful stop unsubscribes the intakes).
	crashed := t.TempDir()
	if out, err := exec.Command("cp", "-a", cfg.Store, filepath.Join(crashed, "broker")).CombinedOutput(); err != nil {
		t.Fatalf("copy the store: %v: %s", err, out)
	}
	b1.stop()
	crashCfg := cfg
	crashCfg.Store = filepath.Join(crashed, "broker")
	srv3, err := New(crashCfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv3.Intake("events", IntakeOptions{Filters: []string{"#"}}); err != nil {
		t.Fatal(err)
	}
	b3 := startServer(t, srv3)
	if subs := srv3.mqtt.Topics.Subscribers("sensors/x"); len(subs.Subscriptions) != 0 || len(subs.InlineSubscriptions) != 1 {
		t.Errorf("after a crash sensors/x goes to client subscriptions %v and %d inline ones; want only the intake's inline one",
			subs.Subscriptions, len(subs.InlineSubscriptions))
	}
	b3.stop()

	srv2, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	in2, err := srv2.Intake("events", IntakeOptions{Filters: []string{"#"}, Exclude: []string{"internal/#"}, Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	b2 := startServer(t, srv2)
	for i := 3; i <= 4; i++ {
		ev := next(in2)
		if !ev.Redelivered || ev.ID != ids[i-1] || string(ev.Payload) != fmt.Sprintf(`{"n":%d}`, i) || ev.ClientID != "dev-raw" {
			t.Fatalf("redelivered event %d: %+v (id want %s)", i, ev, ids[i-1])
		}
	}
	dev2 := rawDevice(t, b2.Addr(ListenerTCP), "dev-raw")
	dev2.publish("sensors/x", `{"n":4}`, 4, true) // resent after the restart
	dev2.publish("sensors/x", `{"n":5}`, 6, false)
	if ev := next(in2); string(ev.Payload) != `{"n":5}` || ev.Redelivered {
		t.Errorf("after the restart: %+v, want {\"n\":5} (the resend of 4 not delivered again)", ev)
	}
	if st := in2.Stats(); st.Redelivered != 2 || st.Resends != 1 {
		t.Errorf("stats after restart: %+v", st)
	}
}
