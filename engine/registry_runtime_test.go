package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/deviceless/deviceless/protocol"
)

// A wasm function goes only to agents advertising wasm, a container function only to agents
// with podman: not to one whose status says "containers": false, but to one that says
// nothing (an agent from before the wasm runtime).
func TestSelectAgentsByRuntime(t *testing.T) {
	r := newRegistry(nil)
	for id, st := range map[string]string{
		"old":    `{"agent":"old","online":true,"runtimes":["python3","sh"]}`,
		"both":   `{"agent":"both","online":true,"runtimes":["python3","sh","wasm"],"containers":true}`,
		"wasm":   `{"agent":"wasm","online":true,"runtimes":["wasm"],"containers":false}`,
		"images": `{"agent":"images","online":true,"runtimes":["wasm"],"containers":true}`,
	} {
		if err := r.update(id, []byte(st), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	all := func(runtime string) []string {
		return r.selectAgents(protocol.Target{Pick: protocol.PickAll, Runtime: runtime}, "", nil)
	}
	for runtime, want := range map[string][]string{
		protocol.RuntimeWasm:  {"both", "images", "wasm"},
		"sh":                  {"both", "images", "old"},
		protocol.RuntimeImage: {"both", "images", "old"},
		"":                    {"both", "images", "old", "wasm"},
	} {
		if got := all(runtime); !slices.Equal(got, want) {
			t.Errorf("runtime %q: %v, want %v", runtime, got, want)
		}
	}
	// A target that names the wasm-only agent gets no container function.
	if got := r.selectAgents(protocol.Target{Agent: "wasm", Runtime: "sh"}, "", nil); len(got) != 0 {
		t.Errorf("container function to the wasm-only agent: %v", got)
	}
	if s := (protocol.Target{Agent: "x", Runtime: protocol.RuntimeWasm}).String(); s != `{"agent":"x"} running wasm` {
		t.Errorf("target string %q", s)
	}
}
