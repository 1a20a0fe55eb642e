package engine

import (
	"encoding/json"
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

// acquire counts an invocation at once below the limit, waits at it until one is given
// back, and gives up (counting nothing) when stop closes.
func TestRegistryAcquireWaitsForASlot(t *testing.T) {
	r := newRegistry(nil)
	st, _ := json.Marshal(protocol.Status{Agent: "a1", Online: true})
	if err := r.update("a1", st, time.Now()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	for range 2 {
		if !r.acquire("a1", 2, stop) {
			t.Fatal("acquire below the limit failed")
		}
	}
	stopped := make(chan struct{})
	close(stopped)
	if r.acquire("a1", 2, stopped) {
		t.Fatal("acquire at the limit counted an invocation instead of waiting")
	}
	got := make(chan bool)
	go func() { got <- r.acquire("a1", 2, stop) }()
	r.addInFlight("a1", -1)
	if !<-got {
		t.Fatal("acquire after a slot was freed failed")
	}
	if n := r.list()[0].InFlight; n != 2 {
		t.Fatalf("in flight %d, want 2", n)
	}
	go func() { got <- r.acquire("a1", 2, stop) }()
	close(stop)
	if <-got {
		t.Fatal("acquire after stop counted an invocation")
	}
	if n := r.list()[0].InFlight; n != 2 {
		t.Fatalf("in flight %d after a stopped acquire, want 2", n)
	}
	if !r.acquire("gone", 2, stop) || !r.acquire("a1", 0, stop) {
		t.Fatal("an unknown agent or no limit must not wait")
	}
}
