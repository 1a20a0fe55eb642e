package broker

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deviceless/deviceless/internal/atomicfile"
)

// A journal is a durable intake's write-ahead log. Each QoS 1 or 2 message the intake
// takes is appended before mochi acknowledges it to its publisher: one write(2), so it
// survives the process being killed; with sync also an fsync, so it survives a power cut.
// The fsync is a group commit: one sync loop covers everything written so far, and the
// acknowledgements wait for it (deferred, so a connection's in-flight window shares it). The consumer commits what it has
// handled; after a restart the messages not committed are delivered again.
//
// Files: segments named by their first sequence number ("00000000000000000001.log"),
// rolled at defaultSegmentSize and deleted once every event in them is committed; "id", a
// random name for the journal; and "key" (mode 0600), the journal's secret: an event's ID
// is an HMAC of the journal's id and the event's sequence number under it (eventID), so it
// names the event for good, across restarts, but nobody without the key can derive one
// event's ID from another's (agents see the ids the engine derives from them).
//
// Record: length (uint32 LE) | CRC-32C of the body (uint32 LE) | body. Body: kind, then
// uvarint sequence, then for events the fields of encodeEvent. A record cut short or
// failing its checksum ends the journal (a power cut in the middle of a write).

const (
	recEvent  byte = 1
	recCommit byte = 2

	defaultSegmentSize = 8 << 20
	maxRecord          = 512 << 20 // larger than any packet mochi accepts

	// resendWindow is how many of a client's latest QoS 1/2 messages are remembered to
	// recognise a resend (the DUP flag, same packet id, same topic and payload) after the
	// acknowledgement was lost, in a restart or a dropped connection.
	resendWindow = 32
	// maxResendClients bounds that memory; past it the table starts again.
	maxResendClients = 1 << 16
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)

	// errResend marks a message the journal already holds: acknowledge it, take it no
	// further.
	errResend = errors.New("broker: resent message already journaled")
)

type journal struct {
	dir  string
	id   string
	key  []byte // the secret of eventID
	sync bool
	log  *slog.Logger
	// segmentSize is where a segment is rolled (defaultSegmentSize; tests set less).
	segmentSize int64

	mu        sync.Mutex
	f         *os.File
	size      int64
	segs      []segment // oldest first; the last is f
	seq       uint64    // last appended
	committed uint64    // last committed
	buf       []byte
	recent    map[string]*resends

	// Group commit: whoever waits for the disk registers a waiter; one goroutine (started
	// when there is something to wait for, gone when there is not) fsyncs everything
	// written so far and completes the waiters it covers, while new records are written.
	smu     sync.Mutex
	synced  uint64
	waiters []syncWaiter
	syncing bool // the sync loop runs
	shut    bool // close has begun: no more waiters
	syncWG  sync.WaitGroup
	// syncFile is the sync loop's fsync ((*os.File).Sync; tests hold it), and syncs
	// counts them.
	syncFile func(*os.File) error
	syncs    atomic.Uint64
}

// syncWaiter is a completion to call once the journal is on disk up to seq.
type syncWaiter struct {
	seq  uint64
	done func(error)
}

type segment struct {
	path        string
	first, last uint64 // last is 0 while the segment holds no event
}

// resends is a ring of a client's latest (packet id, content hash) pairs.
type resends struct {
	pid  [resendWindow]uint16
	hash [resendWindow]uint64
	n    int
}

func (r *resends) has(pid uint16, h uint64) bool {
	for i := 0; i < min(r.n, resendWindow); i++ {
		if r.pid[i] == pid && r.hash[i] == h {
			return true
		}
	}
	return false
}

func (r *resends) add(pid uint16, h uint64) {
	i := r.n % resendWindow
	r.pid[i], r.hash[i] = pid, h
	r.n++
}

// journaled is an event read back from the journal.
type journaled struct {
	ev      Event
	pid     uint16
	dup     bool
	network bool // from a client, not the engine
}

// openJournal opens (creating) the journal in dir and returns it with the events not
// committed, oldest first.
func openJournal(dir string, fsync bool, log *slog.Logger) (*journal, []Event, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{dir: dir, sync: fsync, log: log, segmentSize: defaultSegmentSize, recent: map[string]*resends{},
		syncFile: (*os.File).Sync}
	id, err := os.ReadFile(filepath.Join(dir, "id"))
	switch {
	case err == nil:
		j.id = strings.TrimSpace(string(id))
	case errors.Is(err, os.ErrNotExist):
		var b [6]byte
		_, _ = rand.Read(b[:])
		j.id = hex.EncodeToString(b[:])
		if err := atomicfile.WriteBytes(filepath.Join(dir, "id"), 0o600, []byte(j.id+"\n")); err != nil {
			return nil, nil, fmt.Errorf("journal: %w", err)
		}
	default:
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	if j.key, err = journalKey(dir); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	sort.Strings(names)
	var events []journaled
	for i, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".log"), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("journal: unexpected file %s", name)
		}
		seg := segment{path: name, first: first}
		good, err := j.scan(name, &seg, &events)
		if err != nil {
			return nil, nil, err
		}
		if good >= 0 {
			// A torn tail: keep what is whole. Only the newest segment can have one
			// unless the disk lost data; either way what follows cannot be trusted.
			j.log.Warn("journal: cut short or damaged record; ignoring the rest", "file", name, "offset", good)
			if err := os.Truncate(name, good); err != nil {
				return nil, nil, fmt.Errorf("journal: %w", err)
			}
			for _, later := range names[i+1:] {
				_ = os.Remove(later)
			}
			j.segs = append(j.segs, seg)
			break
		}
		j.segs = append(j.segs, seg)
	}
	var pending []Event
	for _, e := range events {
		if e.network {
			j.remember(e.ev.ClientID, e.pid, contentHash(e.ev.Topic, e.ev.Payload))
		}
		if e.ev.Seq > j.committed {
			e.ev.Redelivered = true
			pending = append(pending, e.ev)
		}
	}
	if err := j.roll(); err != nil {
		return nil, nil, err
	}
	j.synced = j.seq
	j.dropCommitted()
	return j, pending, nil
}

// scan reads one segment. It returns -1 when the file is whole, else the offset of the
// first bad record.
func (j *journal) scan(name string, seg *segment, events *[]journaled) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var off int64
	var head [8]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return -1, nil
			}
			return off, nil
		}
		n := binary.LittleEndian.Uint32(head[:4])
		// A length past the end of the file is a torn record: do not allocate it.
		if n == 0 || n > maxRecord || int64(n) > st.Size()-off-8 {
			return off, nil
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return off, nil
		}
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(head[4:]) {
			return off, nil
		}
		kind, seq, rest, ok := decodeHead(body)
		if !ok {
			return off, nil
		}
		switch kind {
		case recEvent:
			var e journaled
			if !decodeEvent(rest, &e) {
				return off, nil
			}
			e.ev.Seq = seq
			e.ev.ID = j.eventID(seq)
			*events = append(*events, e)
			seg.last = seq
			j.seq = max(j.seq, seq)
		case recCommit:
			j.committed = max(j.committed, seq)
			j.seq = max(j.seq, seq)
		default:
			return off, nil
		}
		off += int64(8 + n)
	}
}

// journalKeySize is the size of a journal's key in bytes.
const journalKeySize = 32

// journalKey reads the journal's key from dir, making one the first time. A journal made
// before keys existed gets one now: the events it holds are named anew, once.
func journalKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, "key")
	key, err := os.ReadFile(path)
	switch {
	case err == nil && len(key) == journalKeySize:
		return key, nil
	case err == nil:
		return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(key), journalKeySize)
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	key = make([]byte, journalKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteBytes(path, 0o600, key); err != nil {
		return nil, err
	}
	return key, nil
}

// eventID names the event of sequence number seq: HMAC-SHA256 of "{journal id}-{seq}"
// under the journal's key, 128 bits in hex.
func (j *journal) eventID(seq uint64) string {
	mac := hmac.New(sha256.New, j.key)
	mac.Write([]byte(j.id))
	mac.Write([]byte{'-'})
	mac.Write(strconv.AppendUint(nil, seq, 36))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// append journals ev as record does and, with sync, waits until it is on disk.
func (j *journal) append(ev *Event, client string, pid uint16, dup bool, then func()) error {
	seq, err := j.record(ev, client, pid, dup, then)
	if err != nil && !errors.Is(err, errResend) {
		return err
	}
	if serr := j.syncTo(seq); serr != nil {
		return serr
	}
	return err
}

// record journals ev (setting its Seq and ID) with one write(2), not waiting for the
// disk, and calls then under the journal's lock, so consumers see events in sequence
// order. It returns the sequence number to wait for (syncTo, whenSynced) before the
// message may be acknowledged. client is the publisher's client id for messages from the
// network ("" for the engine's own): for them it returns errResend for a resend of a
// message already journaled (dup set, same packet id and content), with the last sequence
// number written, which covers the first copy.
func (j *journal) record(ev *Event, client string, pid uint16, dup bool, then func()) (uint64, error) {
	var h uint64
	if client != "" {
		h = contentHash(ev.Topic, ev.Payload)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return 0, ErrIntakeClosed
	}
	if dup && client != "" {
		if r := j.recent[client]; r != nil && r.has(pid, h) {
			return j.seq, errResend
		}
	}
	seq := j.seq + 1
	j.buf = encodeEvent(j.buf[:0], seq, ev, client != "", pid, dup)
	if err := j.write(j.buf); err != nil {
		return 0, err
	}
	j.seq = seq
	ev.Seq = seq
	ev.ID = j.eventID(seq)
	last := &j.segs[len(j.segs)-1]
	last.last = seq
	if client != "" {
		j.remember(client, pid, h)
	}
	if then != nil {
		then()
	}
	if j.size >= j.segmentSize {
		if err := j.roll(); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

func (j *journal) remember(client string, pid uint16, h uint64) {
	r := j.recent[client]
	if r == nil {
		if len(j.recent) >= maxResendClients {
			clear(j.recent)
		}
		r = &resends{}
		j.recent[client] = r
	}
	r.add(pid, h)
}

// write appends one framed record; called with mu held.
func (j *journal) write(rec []byte) error {
	if _, err := j.f.Write(rec); err != nil {
		// A partial write would leave a bad record in the middle: cut it off.
		_ = j.f.Truncate(j.size)
		_, _ = j.f.Seek(j.size, io.SeekStart)
		return fmt.Errorf("journal: write: %w", err)
	}
	j.size += int64(len(rec))
	return nil
}

// roll starts a new segment (called with mu held, or before the journal is shared).
func (j *journal) roll() error {
	if j.f != nil {
		if j.sync {
			if err := j.f.Sync(); err != nil {
				return fmt.Errorf("journal: sync: %w", err)
			}
		}
		_ = j.f.Close()
		j.f = nil
	}
	path := filepath.Join(j.dir, fmt.Sprintf("%020d.log", j.seq+1))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if n := len(j.segs); n == 0 || j.segs[n-1].path != path {
		j.segs = append(j.segs, segment{path: path, first: j.seq + 1})
	}
	j.f, j.size = f, st.Size()
	if j.sync {
		if err := syncDir(j.dir); err != nil {
			return err
		}
	}
	return nil
}

// syncTo waits until the journal is on disk up to seq (at once without sync).
func (j *journal) syncTo(seq uint64) error {
	done := make(chan error, 1)
	j.whenSynced(seq, func(err error) { done <- err })
	return <-done
}

// whenSynced calls done once the journal is on disk up to seq: with nil, or with the
// error that keeps it from getting there (ErrIntakeClosed once the journal closes). Without
// sync, or when seq is on disk already, it calls done at once. done runs on the sync loop:
// it must not block.
func (j *journal) whenSynced(seq uint64, done func(error)) {
	if !j.sync {
		done(nil)
		return
	}
	j.smu.Lock()
	switch {
	case seq <= j.synced:
		j.smu.Unlock()
		done(nil)
		return
	case j.shut:
		j.smu.Unlock()
		done(ErrIntakeClosed)
		return
	}
	j.waiters = append(j.waiters, syncWaiter{seq: seq, done: done})
	if !j.syncing {
		j.syncing = true
		j.syncWG.Add(1)
		go j.syncLoop()
	}
	j.smu.Unlock()
}

// syncLoop fsyncs until no waiter is left: each fsync covers everything written before
// it, so the waiters registered meanwhile share the next one.
func (j *journal) syncLoop() {
	defer j.syncWG.Done()
	var ready []syncWaiter
	for {
		j.mu.Lock()
		f, target, syncFile := j.f, j.seq, j.syncFile
		j.mu.Unlock()
		err := ErrIntakeClosed
		if f != nil {
			j.syncs.Add(1)
			err = syncFile(f)
			if errors.Is(err, os.ErrClosed) {
				// A roll synced and closed that segment: what it held is on disk, the
				// rest is in the next one.
				continue
			}
			if err != nil {
				err = fmt.Errorf("journal: sync: %w", err)
			}
		}

		j.smu.Lock()
		if err == nil && target > j.synced {
			j.synced = target
		}
		synced := j.synced
		ready = ready[:0]
		kept := j.waiters[:0]
		for _, w := range j.waiters {
			if err != nil || w.seq <= synced {
				ready = append(ready, w)
			} else {
				kept = append(kept, w)
			}
		}
		clear(j.waiters[len(kept):])
		j.waiters = kept
		last := len(kept) == 0
		if last {
			j.syncing = false
		}
		j.smu.Unlock()

		for _, w := range ready {
			if w.seq <= synced {
				w.done(nil) // on disk, whatever came after (close synced it)
			} else {
				w.done(err)
			}
		}
		clear(ready)
		if last {
			return
		}
	}
}

// commit records that every event up to seq has been handled, and deletes the segments
// that hold nothing else. Commits are not synced: losing one only redelivers.
func (j *journal) commit(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq <= j.committed || j.f == nil {
		return nil
	}
	seq = min(seq, j.seq)
	j.buf = appendRecord(j.buf[:0], recCommit, seq, nil)
	if err := j.write(j.buf); err != nil {
		return err
	}
	j.committed = seq
	j.dropCommitted()
	return nil
}

// dropCommitted deletes the segments, but the current one, whose events are all committed.
func (j *journal) dropCommitted() {
	for len(j.segs) > 1 && j.segs[0].last <= j.committed {
		if err := os.Remove(j.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("journal: cannot delete a committed segment", "file", j.segs[0].path, "err", err)
			return
		}
		j.segs = j.segs[1:]
	}
}

// close syncs and closes the journal. The waiters the sync loop has not completed get
// ErrIntakeClosed (their messages are on disk or not, but no longer acknowledged), and
// close returns after the loop has ended.
func (j *journal) close() error {
	j.smu.Lock()
	j.shut = true
	j.smu.Unlock()
	err := func() error {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.f == nil {
			return nil
		}
		var err error
		if j.sync {
			if err = j.f.Sync(); err == nil {
				j.smu.Lock()
				j.synced = max(j.synced, j.seq)
				j.smu.Unlock()
			}
		}
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
		j.f = nil
		return err
	}()
	j.syncWG.Wait()
	return err
}

func contentHash(topic string, payload []byte) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, topic)
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(payload)
	return h.Sum64()
}

// appendRecord frames a record of kind and seq with body.
func appendRecord(b []byte, kind byte, seq uint64, body []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	b = binary.AppendUvarint(b, seq)
	b = append(b, body...)
	return frame(b, start)
}

// frame fills in the length and checksum of the record starting at b[start].
func frame(b []byte, start int) []byte {
	body := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

func decodeHead(body []byte) (kind byte, seq uint64, rest []byte, ok bool) {
	if len(body) < 2 {
		return 0, 0, nil, false
	}
	seq, n := binary.Uvarint(body[1:])
	if n <= 0 || seq == 0 {
		return 0, 0, nil, false
	}
	return body[0], seq, body[1+n:], true
}

// encodeEvent appends the framed event record.
func encodeEvent(b []byte, seq uint64, ev *Event, network bool, pid uint16, dup bool) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, recEvent)
	b = binary.AppendUvarint(b, seq)
	flags := uint64(ev.QoS & 3)
	if ev.Retain {
		flags |= 4
	}
	if dup {
		flags |= 8
	}
	if network {
		flags |= 16
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, uint64(pid))
	b = appendBytes(b, ev.Topic)
	b = appendBytes(b, ev.Payload)
	b = appendBytes(b, ev.ClientID)
	b = appendBytes(b, ev.Username)
	b = binary.AppendVarint(b, ev.Received.UnixNano())
	b = appendBytes(b, ev.ResponseTopic)
	b = appendBytes(b, ev.CorrelationData)
	b = appendBytes(b, ev.ContentType)
	b = binary.AppendUvarint(b, uint64(ev.Expiry/time.Second))
	b = binary.AppendUvarint(b, uint64(len(ev.UserProperties)))
	for _, u := range ev.UserProperties {
		b = appendBytes(b, u.Key)
		b = appendBytes(b, u.Value)
	}
	return frame(b, start)
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEvent reads the fields encodeEvent wrote after the sequence number.
func decodeEvent(b []byte, e *journaled) bool {
	d := decoder{b: b}
	flags := d.uvarint()
	e.pid = uint16(d.uvarint())
	e.ev.QoS = byte(flags & 3)
	e.ev.Retain = flags&4 != 0
	e.dup = flags&8 != 0
	e.network = flags&16 != 0
	e.ev.Topic = string(d.bytes())
	if p := d.bytes(); len(p) > 0 {
		e.ev.Payload = append([]byte(nil), p...)
	}
	e.ev.ClientID = string(d.bytes())
	e.ev.Username = string(d.bytes())
	e.ev.Received = time.Unix(0, d.varint())
	e.ev.ResponseTopic = string(d.bytes())
	if c := d.bytes(); len(c) > 0 {
		e.ev.CorrelationData = append([]byte(nil), c...)
	}
	e.ev.ContentType = string(d.bytes())
	e.ev.Expiry = time.Duration(d.uvarint()) * time.Second
	if n := d.uvarint(); n > 0 && n <= uint64(len(b)) {
		e.ev.UserProperties = make([]UserProperty, n)
		for i := range e.ev.UserProperties {
			e.ev.UserProperties[i] = UserProperty{Key: string(d.bytes()), Value: string(d.bytes())}
		}
	}
	return !d.bad && len(d.b) == 0
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }
func (d *decoder) varint() int64   { return readVarint(d, binary.Varint) }

func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.bad = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		d.b = nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}
