package wasm

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDigest(t *testing.T) {
	d := Digest([]byte("abc"))
	if d != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("digest %s", d)
	}
	if h, err := ParseDigest(d); err != nil || len(h) != 64 {
		t.Fatalf("parse %s: %q %v", d, h, err)
	}
	for _, bad := range []string{"", "abc", "sha256:", "sha256:" + strings.Repeat("g", 64),
		"sha256:" + strings.Repeat("A", 64), "sha512:" + strings.Repeat("a", 64), d + "0",
		"sha256:../../" + strings.Repeat("a", 58)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStorePutGet(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	mod := []byte("\x00asm\x01\x00\x00\x00 a module")
	d, err := s.Put(mod)
	if err != nil || d != Digest(mod) {
		t.Fatalf("put: %s, %v", d, err)
	}
	fi, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(d, DigestPrefix)+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := s.Get(d)
	if err != nil || !bytes.Equal(got, mod) {
		t.Fatalf("get: %q, %v", got, err)
	}
	if !s.Has(d) || s.Size() != int64(len(mod)) {
		t.Errorf("has %v, size %d", s.Has(d), s.Size())
	}
	if _, err := s.Put(mod); err != nil || s.Size() != int64(len(mod)) {
		t.Errorf("second put: size %d, %v", s.Size(), err)
	}
	if _, err := s.Get(Digest([]byte("other"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("get of a missing module: %v", err)
	}
	// A new process on the same folder finds it.
	s2, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Get(d); err != nil || !bytes.Equal(got, mod) {
		t.Fatalf("get after reopen: %q, %v", got, err)
	}
	if ds := s2.Digests(); len(ds) != 1 || ds[0] != d {
		t.Errorf("digests %v", ds)
	}
	if err := s2.Remove(d); err != nil || s2.Has(d) || s2.Size() != 0 {
		t.Errorf("remove: %v, has %v, size %d", err, s2.Has(d), s2.Size())
	}
}

func TestStoreTampered(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Put([]byte("module bytes"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.TrimPrefix(d, DigestPrefix)+".wasm")
	if err := os.WriteFile(path, []byte("module bytez"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(d)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), d) {
		t.Fatalf("get of a tampered file: %v", err)
	}
	if _, serr := os.Stat(path); !errors.Is(serr, fs.ErrNotExist) || s.Has(d) {
		t.Errorf("tampered file kept (%v)", serr)
	}
	// A file named after another module's digest is refused the same way.
	other := Digest([]byte("other"))
	if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(other, DigestPrefix)+".wasm"), []byte("module bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(other); !errors.Is(err, ErrTampered) {
		t.Errorf("get of a misnamed file: %v", err)
	}
}

func TestStoreEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(c byte) []byte { return bytes.Repeat([]byte{c}, 40) }
	a, _ := s.Put(mod('a'))
	time.Sleep(2 * time.Millisecond)
	b, _ := s.Put(mod('b'))
	time.Sleep(2 * time.Millisecond)
	if _, err := s.Get(a); err != nil { // a is now more recent than b
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	c, err := s.Put(mod('c'))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(a) || s.Has(b) || !s.Has(c) || s.Size() != 80 {
		t.Fatalf("has a %v b %v c %v, size %d: want b evicted", s.Has(a), s.Has(b), s.Has(c), s.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(b, DigestPrefix)+".wasm")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("evicted file kept: %v", err)
	}
	if _, err := s.Put(bytes.Repeat([]byte{'d'}, 101)); err == nil {
		t.Error("a module larger than the limit was stored")
	}
	// The limit also holds when a store is opened with a smaller one; the last used stays.
	s2, err := OpenStore(dir, 50)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Size() != 40 || !s2.Has(c) {
		t.Errorf("reopened with a 50-byte limit: size %d, has c %v", s2.Size(), s2.Has(c))
	}
}

func TestStoreSweep(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".put-0123456789ab-stale"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := s.Put([]byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.sweep(); n != 1 || err != nil {
		t.Fatalf("swept %d, %v", n, err)
	}
	if !s.Has(d) {
		t.Error("a stored module was swept")
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Errorf("left %d files", len(files))
	}
}
