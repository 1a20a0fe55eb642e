package wasm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The test modules are built from source at test time, once per test binary, into a
// temporary folder: the examples with scripts/wasm-examples.sh, testdata/c/*.c with clang and
// wasi-libc, testdata/go/* with GOOS=wasip1 GOARCH=wasm. A missing tool fails the test (run
// scripts/setup.sh); nothing is skipped and no .wasm file is checked in.

var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deviceless-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	if sharedRT != nil {
		_ = sharedRT.Close(context.Background())
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var (
	sharedOnce sync.Once
	sharedRT   *Runtime
	sharedErr  error
)

// shared is one runtime with the default configuration for the tests that do not depend on
// what is loaded, so that each test module is compiled once per test binary.
func shared(t testing.TB) *Runtime {
	t.Helper()
	sharedOnce.Do(func() { sharedRT, sharedErr = New(Config{Dir: filepath.Join(buildDir, "shared")}) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedRT
}

type built struct {
	once sync.Once
	b    []byte
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*built{}
)

// testModule returns the bytes of a test module: "example/go-echo", "example/c-echo",
// "c/<name>" (testdata/c/<name>.c) or "go/fn" (testdata/go/fn).
func testModule(t testing.TB, name string) []byte {
	t.Helper()
	key := name
	if strings.HasPrefix(name, "example/") {
		key = "example" // one script builds them all
	}
	buildsMu.Lock()
	bd := builds[key]
	if bd == nil {
		bd = &built{}
		builds[key] = bd
	}
	buildsMu.Unlock()
	bd.once.Do(func() { bd.err = build(key) })
	if bd.err != nil {
		t.Fatalf("building %s: %v", name, bd.err)
	}
	kind, base, _ := strings.Cut(name, "/")
	b, err := os.ReadFile(filepath.Join(buildDir, kind+"-"+base+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func build(key string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch kind, base, _ := strings.Cut(key, "/"); kind {
	case "example":
		dir := filepath.Join(buildDir, "examples")
		cmd = exec.Command("bash", filepath.Join(root, "scripts", "wasm-examples.sh"), dir)
		if err := run(cmd); err != nil {
			return err
		}
		for _, m := range []string{"go-echo", "c-echo"} {
			if err := os.Rename(filepath.Join(dir, m+".wasm"), filepath.Join(buildDir, "example-"+m+".wasm")); err != nil {
				return err
			}
		}
		return nil
	case "c":
		// The flags of scripts/wasm-examples.sh.
		cmd = exec.Command("clang", "--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-Wl,--strip-all",
			"-o", filepath.Join(buildDir, "c-"+base+".wasm"), filepath.Join("testdata", "c", base+".c"))
	case "go":
		cmd = exec.Command("go", "build", "-trimpath", "-o", filepath.Join(buildDir, "go-"+base+".wasm"), "./testdata/go/"+base)
		// Without the project's GOFLAGS (podman build tags).
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	default:
		return fmt.Errorf("unknown test module %q", key)
	}
	return run(cmd)
}

func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s(tools missing? run scripts/setup.sh)", strings.Join(cmd.Args, " "), err, out.String())
	}
	return nil
}

// Hand-assembled modules for what C and Go cannot express, each with its text format.

func section(id byte, content ...byte) []byte {
	return append([]byte{id, byte(len(content))}, content...)
}

func moduleOf(sections ...[]byte) []byte {
	b := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

var (
	typeVoid    = section(1, 0x01, 0x60, 0x00, 0x00)                                     // (type (func))
	funcs1      = section(3, 0x01, 0x00)                                                 // one function of type 0
	exportStart = section(7, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00)       // (export "_start" (func 0))
	bodyEmpty   = section(10, 0x01, 0x02, 0x00, 0x0b)                                    // (func)
	bodyTrap    = section(10, 0x01, 0x03, 0x00, 0x00, 0x0b)                              // (func unreachable)
	importEnv   = section(2, 0x01, 0x03, 'e', 'n', 'v', 0x03, 'f', 'o', 'o', 0x00, 0x00) // (import "env" "foo" (func))
)

// wasmUnreachable is (module (func (export "_start") unreachable)).
var wasmUnreachable = moduleOf(typeVoid, funcs1, exportStart, bodyTrap)

// wasmImportsEnv is (module (import "env" "foo" (func)) (func (export "_start"))).
var wasmImportsEnv = moduleOf(typeVoid, importEnv, funcs1,
	section(7, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01), bodyEmpty)

// wasmNoStart is (module (func)): nothing to run.
var wasmNoStart = moduleOf(typeVoid, funcs1, bodyEmpty)

// wasmBigMemory is (module (memory 1024) (func (export "_start"))): 64 MiB from the start.
var wasmBigMemory = moduleOf(typeVoid, funcs1, section(5, 0x01, 0x00, 0x80, 0x08), exportStart, bodyEmpty)
