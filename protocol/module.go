package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RuntimeWasm is the runtime of WebAssembly functions: a WASI preview 1 module the agent
// runs in its own process, a fresh instance per invocation (docs/agent.md).
const RuntimeWasm = "wasm"

// RuntimeImage is what Target.Runtime holds for a function that is a container image:
// an agent runs it when it has podman (see Status.Runs).
const RuntimeImage = "(image)"

// Modules travel content-addressed (docs/design.md, "Modules").
const (
	// ModuleDigestPrefix starts a module digest: "sha256:" and 64 lowercase hex digits,
	// the sha256 of the module's bytes.
	ModuleDigestPrefix = "sha256:"
	// MaxModuleSize bounds one module, in files, deploys and transfers.
	MaxModuleSize = 32 << 20
	// ModuleChunkSize is the most module bytes in one message of a transfer, well under
	// the broker's default maximum packet size (1 MiB).
	ModuleChunkSize = 256 << 10
	// ChunkProperty is the user property of a module chunk: "index/total", from 0.
	ChunkProperty = "deviceless-chunk"
	// ModuleSizeProperty is the user property giving the whole module's size in bytes.
	ModuleSizeProperty = "deviceless-module-size"
	// ModuleErrorProperty is the user property of a refused module request: the reason.
	ModuleErrorProperty = "deviceless-error"
)

// ModuleDigest returns the digest of a module's bytes.
func ModuleDigest(module []byte) string {
	sum := sha256.Sum256(module)
	return ModuleDigestPrefix + hex.EncodeToString(sum[:])
}

// IsModuleDigest reports whether s is a module digest (lowercase hex).
func IsModuleDigest(s string) bool {
	h, ok := strings.CutPrefix(s, ModuleDigestPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

var wasmHeader = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// CheckModule reports whether b looks like a WebAssembly binary module (its magic number and
// version 1) of at most MaxModuleSize bytes. Whether it compiles is for the agent to say.
func CheckModule(b []byte) error {
	switch {
	case len(b) > MaxModuleSize:
		return fmt.Errorf("module of %d bytes is larger than %d bytes", len(b), MaxModuleSize)
	case !bytes.HasPrefix(b, wasmHeader):
		return errors.New("not a WebAssembly binary module (no \\0asm version 1 header; a .wat text file must be compiled first)")
	}
	return nil
}

// ParseChunk reads a module chunk's ChunkProperty value "index/total".
func ParseChunk(v string) (index, total int, err error) {
	a, b, ok := strings.Cut(v, "/")
	if ok {
		index, err = strconv.Atoi(a)
		if err == nil {
			total, err = strconv.Atoi(b)
		}
	}
	maxChunks := MaxModuleSize/ModuleChunkSize + 1
	if !ok || err != nil || total < 1 || total > maxChunks || index < 0 || index >= total {
		return 0, 0, fmt.Errorf("bad chunk %q: want index/total with 0 <= index < total <= %d", v, maxChunks)
	}
	return index, total, nil
}

// SpecRuntime is the runtime an agent needs to run s: its runtime, or RuntimeImage.
func SpecRuntime(s FunctionSpec) string {
	if s.Runtime != "" {
		return s.Runtime
	}
	return RuntimeImage
}

// Runs reports whether the agent whose status this is runs functions of runtime
// (SpecRuntime; "" is anything): wasm needs the agent to list wasm; a container (an image
// or a podman runtime) needs podman, which the agent has unless its status says
// `"containers": false` (agents older than the wasm runtime say nothing, and have podman).
func (s Status) Runs(runtime string) bool {
	switch runtime {
	case "":
		return true
	case RuntimeWasm:
		for _, r := range s.Runtimes {
			if r == RuntimeWasm {
				return true
			}
		}
		return false
	}
	return s.Containers == nil || *s.Containers
}
