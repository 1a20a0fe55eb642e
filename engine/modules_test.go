package engine

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/protocol"
)

// bigModule is a valid WebAssembly module of about n bytes: the header and one custom
// section of filler.
func bigModule(n int) []byte {
	payload := bytes.Repeat([]byte{'x'}, n)
	body := append([]byte{4, 'f', 'i', 'l', 'l'}, payload...)
	size := len(body)
	var leb []byte // the section size, LEB128
	for {
		b := byte(size & 0x7f)
		size >>= 7
		if size != 0 {
			leb = append(leb, b|0x80)
			continue
		}
		leb = append(leb, b)
		break
	}
	return append(append([]byte("\x00asm\x01\x00\x00\x00\x00"), leb...), body...)
}

func userProp(p *paho.Publish, key string) string {
	if p.Properties == nil {
		return ""
	}
	for _, u := range p.Properties.User {
		if u.Key == key {
			return u.Value
		}
	}
	return ""
}

// The engine serves a rule file's module to the agent that asks, in chunks of at most 256
// KiB on that agent's modules topic, and refuses what it has not and the same request again
// within 5 s; a request whose response
// topic is not the requester's own modules topic is not answered; a device may not ask.
func TestServeModules(t *testing.T) {
	dir := t.TempDir()
	mod := bigModule(600 << 10) // three chunks
	if err := os.WriteFile(filepath.Join(dir, "big.wasm"), mod, 0o644); err != nil {
		t.Fatal(err)
	}
	writeRules(t, dir, "functions:\n  big:\n    runtime: wasm\n    module: big.wasm\n")
	e := startEngine(t, testConfig(t, dir))
	if got := e.ruleSet().Functions["big"].Spec.Module; got != protocol.ModuleDigest(mod) {
		t.Fatalf("the rule file's module is %q, want its digest", got)
	}
	a1 := connect(t, e.BrokerAddr(), "a1", nil, nil)
	a1.sub(t, "deviceless/agents/a1/#")
	topics := protocol.Topics{}
	ask := func(c *mqttClient, digest, responseTopic, corr string) {
		c.pub(t, &paho.Publish{Topic: topics.Module(digest), QoS: 1,
			Properties: &paho.PublishProperties{ResponseTopic: responseTopic, CorrelationData: []byte(corr)}})
	}

	// Asked on another topic of its own first: dropped, so the first answer a1 sees is the
	// one to its real request.
	ask(a1, protocol.ModuleDigest(mod), "deviceless/agents/a1/result", "wrong")
	ask(a1, protocol.ModuleDigest(mod), topics.AgentModules("a1"), "c1")
	var got []byte
	for i := range 3 {
		m := a1.next(t, topics.AgentModules("a1"))
		if string(m.Properties.CorrelationData) != "c1" || userProp(m, protocol.ChunkProperty) != fmt.Sprintf("%d/3", i) ||
			userProp(m, protocol.ModuleSizeProperty) != strconv.Itoa(len(mod)) || len(m.Payload) > protocol.ModuleChunkSize {
			t.Fatalf("chunk %d: corr %q, chunk %q, size %q, %d bytes", i, m.Properties.CorrelationData,
				userProp(m, protocol.ChunkProperty), userProp(m, protocol.ModuleSizeProperty), len(m.Payload))
		}
		got = append(got, m.Payload...)
	}
	if !bytes.Equal(got, mod) {
		t.Fatalf("assembled %d bytes, not the module's %d", len(got), len(mod))
	}

	ask(a1, protocol.ModuleDigest([]byte("none")), topics.AgentModules("a1"), "c2")
	if m := a1.next(t, topics.AgentModules("a1")); !strings.Contains(userProp(m, protocol.ModuleErrorProperty), "has no module") || string(m.Properties.CorrelationData) != "c2" {
		t.Fatalf("unknown module: %q", userProp(m, protocol.ModuleErrorProperty))
	}

	// Asking again at once: refused (an agent asks once per module; a loop is a flood).
	ask(a1, protocol.ModuleDigest(mod), topics.AgentModules("a1"), "c5")
	if m := a1.next(t, topics.AgentModules("a1")); !strings.Contains(userProp(m, protocol.ModuleErrorProperty), "asked again") || len(m.Payload) != 0 {
		t.Fatalf("a repeated request: %q, %d bytes", userProp(m, protocol.ModuleErrorProperty), len(m.Payload))
	}

	// a2 asks for an answer on a1's topic: dropped (a1 gets nothing more).
	a2 := connect(t, e.BrokerAddr(), "a2", nil, nil)
	ask(a2, protocol.ModuleDigest(mod), topics.AgentModules("a1"), "c3")
	// A device may not ask at all (PUBACK: not authorized).
	dev := connect(t, e.BrokerAddr(), "dev", nil, nil)
	if _, err := dev.Publish(t.Context(), &paho.Publish{Topic: topics.Module(protocol.ModuleDigest(mod)), QoS: 1,
		Properties: &paho.PublishProperties{ResponseTopic: topics.AgentModules("a1")}}); err == nil {
		t.Error("a device's module request was accepted")
	}
	// The marker: a1's next answer is to this request, not to a2's or the device's.
	ask(a1, protocol.ModuleDigest([]byte("marker")), topics.AgentModules("a1"), "c4")
	if m := a1.next(t, topics.AgentModules("a1")); string(m.Properties.CorrelationData) != "c4" {
		t.Fatalf("a1 received an answer to %q", m.Properties.CorrelationData)
	}
}
