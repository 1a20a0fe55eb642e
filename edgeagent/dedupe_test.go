package edgeagent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/protocol"
)

// The ids the agent has seen, with their outcomes, survive a restart: an actuation or an
// invocation delivered again after the agent restarted (the broker redelivers QoS 1
// messages of the session, the engine sends the same ids again after its own crash) is
// not applied or run again, and is answered with the stored outcome. An id whose
// actuations were being applied when the agent died is answered with an error and not
// applied again; a torn last record is ignored.
func TestDedupeSurvivesRestart(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	topics := protocol.Topics{}
	actuate := func(id, reply string) protocol.Result {
		t.Helper()
		act, _ := json.Marshal(protocol.Actuation{ID: id, Line: "fan", Value: 1})
		cl.publish(topics.AgentActuate(cfg.ID), act, &paho.PublishProperties{ResponseTopic: "test/replies/" + reply, CorrelationData: []byte(reply)})
		var r protocol.Result
		if err := json.Unmarshal(cl.await("test/replies/"+reply, nil).Payload, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	inv := shInvocation("once-only", `read -r inv; echo '{"actuate":[{"line":"alarm","value":1}],"result":"'"$(cat /proc/sys/kernel/random/uuid)"'"}'`)

	a, stop := startAgentStop(t, cfg, cl)
	if r := actuate("act-1", "first"); r.Status != protocol.StatusOK {
		t.Fatalf("first actuation: %+v", r)
	}
	first := cl.invoke(cfg.ID, inv)
	if first.Status != protocol.StatusOK {
		t.Fatalf("first invocation: %+v", first)
	}
	lines := a.Lines().(*sim.Lines)
	if !slices.Equal(lines.History("fan"), []int{1}) || !slices.Equal(lines.History("alarm"), []int{1}) {
		t.Fatalf("fan %v, alarm %v", lines.History("fan"), lines.History("alarm"))
	}
	stop()

	a, stop = startAgentStop(t, cfg, cl)
	if r := actuate("act-1", "again"); r.Status != protocol.StatusOK {
		t.Fatalf("repeated actuation after a restart: %+v", r)
	}
	if again := cl.invoke(cfg.ID, inv); string(again.Output) != string(first.Output) || again.Status != protocol.StatusOK {
		t.Fatalf("repeated invocation after a restart ran again: %s, first %s", again.Output, first.Output)
	}
	lines = a.Lines().(*sim.Lines)
	if h, h2 := lines.History("fan"), lines.History("alarm"); len(h) != 0 || len(h2) != 0 {
		t.Fatalf("applied again after a restart: fan %v, alarm %v", h, h2)
	}
	stop()

	// A crash between "applying" and its outcome, then a record cut short by the crash.
	file := filepath.Join(cfg.State, dedupeFile)
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"act-2","applying":true}` + "\n" + `{"id":"act-3","res`)
	f.Close()
	a, _ = startAgentStop(t, cfg, cl)
	if r := actuate("act-2", "interrupted"); r.Status != protocol.StatusError || !strings.Contains(r.Error, "restarted while applying") {
		t.Fatalf("actuation interrupted by a crash: %+v", r)
	}
	if r := actuate("act-3", "torn"); r.Status != protocol.StatusOK {
		t.Fatalf("actuation whose record was torn: %+v", r)
	}
	if h := a.Lines().(*sim.Lines).History("fan"); !slices.Equal(h, []int{1}) {
		t.Fatalf("fan %v, want act-3 alone applied", h)
	}
}

// The memory keeps the last max ids and about maxBytes of outcomes (older outcomes lose
// their output first), and its file stays within a small multiple of that however many
// ids go through it; reopened, it holds what it held.
func TestDedupeFileBounded(t *testing.T) {
	dir := t.TempDir()
	open := func() *dedupe {
		d, err := openDedupe(filepath.Join(dir, dedupeFile), "a", 4, 2000, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := open()
	for i := range 200 {
		id := "id-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + time.Duration(i).String()
		d.join(id, replyTo{})
		out, _ := json.Marshal(strings.Repeat("o", 1000))
		payload, _ := json.Marshal(protocol.Result{ID: id, Status: protocol.StatusOK, Output: out})
		d.complete(id, payload, true)
	}
	fi, err := os.Stat(filepath.Join(dir, dedupeFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 64<<10 { // 200 records of 1.2 KB went through it
		t.Fatalf("file of %d bytes for 4 ids", fi.Size())
	}
	last := "id-" + strings.Repeat("x", 199%3) + string(rune('a'+199%26)) + time.Duration(199).String()
	d.close()
	d = open()
	defer d.close()
	if len(d.entries) != 4 {
		t.Fatalf("%d ids after reopening, want 4", len(d.entries))
	}
	payload, seen, done := d.join(last, replyTo{})
	var r protocol.Result
	if !seen || !done || json.Unmarshal(payload, &r) != nil || r.Status != protocol.StatusOK {
		t.Fatalf("last id: %s %v %v", payload, seen, done)
	}
	kept := 0
	for _, e := range d.entries {
		kept += len(e.payload)
	}
	if kept > 2000 {
		t.Fatalf("%d bytes of outcomes kept, want at most 2000", kept)
	}
	if r.Output == nil || !strings.Contains(string(d.entries[d.order[0]].payload), "no longer kept") {
		t.Fatalf("the newest should keep its output, the oldest lose it: %s / %s", payload, d.entries[d.order[0]].payload)
	}
}
