package wasm

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DigestPrefix starts every module digest: "sha256:" and 64 lowercase hex digits, the
// sha256 of the module's bytes (the form of an OCI content digest).
const DigestPrefix = "sha256:"

// DefaultStoreLimit bounds the total size of the modules a Store keeps.
const DefaultStoreLimit = 256 << 20

// ErrTampered reports a module file whose bytes do not hash to the digest it is stored
// under: changed on disk or corrupt. The file is removed; Put the module again.
var ErrTampered = errors.New("module bytes do not match their digest")

// errNotStored reports a digest the store has no file for.
var errNotStored = errors.New("not in the module store")

// Digest returns the digest of a module's bytes.
func Digest(module []byte) string {
	sum := sha256.Sum256(module)
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// ParseDigest checks that d is a module digest and returns its hex part.
func ParseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, DigestPrefix)
	if !ok || len(h) != 2*sha256.Size || strings.ToLower(h) != h {
		return "", fmt.Errorf("wasm: %q is not a module digest (want %s and 64 lowercase hex digits)", d, DigestPrefix)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("wasm: %q is not a module digest (want %s and 64 lowercase hex digits)", d, DigestPrefix)
	}
	return h, nil
}

// Store keeps WebAssembly modules on disk by content digest: one file per module, named
// <hex>.wasm, written atomically with mode 0600. Every Get verifies the bytes against the
// digest. The total size is bounded: a Put that passes the limit removes the least recently
// used modules first. It is safe for concurrent use, and for one process per folder.
type Store struct {
	dir   string
	limit int64

	mu      sync.Mutex
	entries map[string]*storeEntry // by hex digest
	total   int64
	writing map[string]struct{} // temporary files of Puts in progress
}

type storeEntry struct {
	size int64
	used time.Time
}

// OpenStore opens (creating it) the store in dir, keeping at most limit bytes of modules
// (DefaultStoreLimit when limit is 0). The modules already there are indexed by their
// names and sizes; their bytes are verified when they are read.
func OpenStore(dir string, limit int64) (*Store, error) {
	if dir == "" {
		return nil, errors.New("wasm: module store folder is required")
	}
	if limit == 0 {
		limit = DefaultStoreLimit
	}
	if limit < 0 {
		return nil, fmt.Errorf("wasm: module store limit %d is negative", limit)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: module store: %w", err)
	}
	s := &Store{dir: dir, limit: limit, entries: map[string]*storeEntry{}, writing: map[string]struct{}{}}
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm: module store: %w", err)
	}
	for _, f := range files {
		h, ok := strings.CutSuffix(f.Name(), ".wasm")
		if !ok || !f.Type().IsRegular() {
			continue
		}
		if _, err := ParseDigest(DigestPrefix + h); err != nil {
			continue
		}
		info, err := f.Info()
		if err != nil {
			continue
		}
		s.entries[h] = &storeEntry{size: info.Size(), used: info.ModTime()}
		s.total += info.Size()
	}
	s.mu.Lock()
	s.evictLocked("")
	s.mu.Unlock()
	return s, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// Size is the total size of the modules stored, in bytes.
func (s *Store) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *Store) path(h string) string { return filepath.Join(s.dir, h+".wasm") }

// Put stores module and returns its digest. The module's bytes are not validated as
// WebAssembly here: compiling does that.
func (s *Store) Put(module []byte) (string, error) {
	if int64(len(module)) > s.limit {
		return "", fmt.Errorf("wasm: module of %d bytes is larger than the store's limit of %d bytes", len(module), s.limit)
	}
	d := Digest(module)
	h := d[len(DigestPrefix):]
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := ".put-" + h[:12] + "-" + hex.EncodeToString(rnd[:])
	s.mu.Lock()
	s.writing[name] = struct{}{} // before the file exists, so that a sweep leaves it alone
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.writing, name)
		s.mu.Unlock()
	}()
	tmp, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("wasm: store %s: %w", d, err)
	}
	err = writeSynced(tmp, module)
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(h))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("wasm: store %s: %w", d, err)
	}
	syncDir(s.dir)
	// The modification time is the last use (see Get); set from the same clock as there; the
	// file system's own timestamps are coarser.
	now := time.Now()
	_ = os.Chtimes(s.path(h), now, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[h]; e != nil {
		s.total -= e.size
	}
	s.entries[h] = &storeEntry{size: int64(len(module)), used: now}
	s.total += int64(len(module))
	s.evictLocked(h)
	return d, nil
}

func writeSynced(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename in dir durable (best effort: some file systems refuse).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// evictLocked removes least recently used modules, never keep, until the total fits.
func (s *Store) evictLocked(keep string) {
	if s.total <= s.limit {
		return
	}
	hs := make([]string, 0, len(s.entries))
	for h := range s.entries {
		if h != keep {
			hs = append(hs, h)
		}
	}
	sort.Slice(hs, func(i, j int) bool { return s.entries[hs[i]].used.Before(s.entries[hs[j]].used) })
	for _, h := range hs {
		if s.total <= s.limit {
			return
		}
		s.removeLocked(h)
	}
}

func (s *Store) removeLocked(h string) {
	e := s.entries[h]
	if e == nil {
		return
	}
	_ = os.Remove(s.path(h))
	delete(s.entries, h)
	s.total -= e.size
}

// Has reports whether the store has a module with digest d (without reading it).
func (s *Store) Has(d string) bool {
	h, err := ParseDigest(d)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[h] != nil
}

// Get reads the module with digest d and verifies it. A module missing from the store is
// an error wrapping fs.ErrNotExist; one whose bytes do not match d wraps ErrTampered, and its
// file is removed.
func (s *Store) Get(d string) ([]byte, error) {
	h, err := ParseDigest(d)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		s.mu.Lock()
		s.removeLocked(h) // removed behind our back
		s.mu.Unlock()
		return nil, fmt.Errorf("wasm: module %s: %w: %w", d, errNotStored, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("wasm: module %s: %w", d, err)
	}
	if got := Digest(b); got != d {
		s.mu.Lock()
		s.removeLocked(h)
		s.mu.Unlock()
		return nil, fmt.Errorf("wasm: module %s refused: the file %s hashes to %s: %w; it was removed, put the module again",
			d, s.path(h), got, ErrTampered)
	}
	now := time.Now()
	s.mu.Lock()
	if e := s.entries[h]; e != nil {
		e.used = now
	} else {
		// Written by another process sharing the folder: index it.
		s.entries[h] = &storeEntry{size: int64(len(b)), used: now}
		s.total += int64(len(b))
		s.evictLocked(h)
	}
	s.mu.Unlock()
	// The modification time carries the last use across restarts.
	_ = os.Chtimes(s.path(h), now, now)
	return b, nil
}

// Remove deletes the module with digest d, if stored.
func (s *Store) Remove(d string) error {
	h, err := ParseDigest(d)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[h] == nil {
		_ = os.Remove(s.path(h))
		return nil
	}
	s.removeLocked(h)
	return nil
}

// Digests lists the digests of the stored modules.
func (s *Store) Digests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := make([]string, 0, len(s.entries))
	for h := range s.entries {
		ds = append(ds, DigestPrefix+h)
	}
	sort.Strings(ds)
	return ds
}

// sweep removes temporary files that no Put in progress owns (left by a crash) and returns
// how many it removed.
func (s *Store) sweep() (int, error) {
	files, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("wasm: module store: %w", err)
	}
	n := 0
	for _, f := range files {
		if !strings.HasPrefix(f.Name(), ".put-") {
			continue
		}
		s.mu.Lock()
		_, busy := s.writing[f.Name()]
		s.mu.Unlock()
		if busy {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, f.Name())); err == nil {
			n++
		}
	}
	return n, nil
}
