package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// agentFaultRules: "slow" sleeps past its timeout on the first attempt only, so an attempt
// that is not interrupted fails the test (status timeout) instead of racing it; a retry
// answers at once. "hang" never answers. Both stop on SIGTERM (a shell as PID 1 ignores it
// otherwise, and podman waits 10s before SIGKILL when a leftover container is removed).
const agentFaultRules = `
functions:
  slow:
    runtime: sh
    code: |
      read -r inv
      case "$inv" in
        *'"attempt":1,'*) trap 'exit 143' TERM; sleep 60 & wait $!; echo '{"attempt":1}' ;;
        *'"attempt":2,'*) echo '{"attempt":2}' ;;
        *) echo '{"attempt":"later"}' ;;
      esac
    timeout: 3s
    memory: 16Mi
  hang:
    runtime: sh
    code: |
      read -r inv
      trap 'exit 143' TERM
      sleep 60 & wait $!
    timeout: 3s
    memory: 16Mi
rules:
  - name: slow
    on: e2e/slow
    do:
      - invoke: slow
        target: {labels: {pool: e2e}}
  - name: hang
    on: e2e/hang
    do:
      - invoke: hang
        target: {labels: {pool: e2e}}
`

// waitRunning waits for a running container of function on one of the agents and returns
// that agent and the invocation id.
func (c *cluster) waitRunning(function string, exclude string, ids ...string) (agent, invocation string) {
	c.t.Helper()
	waitFor(c.t, 60*time.Second, fmt.Sprintf("a running %s container on one of %v", function, ids), func() bool {
		for _, id := range ids {
			for _, ct := range containers(c.t, c.socket, id) {
				if ct.State == "running" && ct.Labels["io.deviceless.function"] == function &&
					(exclude == "" || ct.Labels["io.deviceless.invocation"] == exclude) {
					agent, invocation = id, ct.Labels["io.deviceless.invocation"]
					return true
				}
			}
		}
		return false
	})
	return agent, invocation
}

// TestAgentKilledMidInvocation: an agent SIGKILLed while its container runs an invocation
// (pick: one) → the engine retries the same invocation id on the other agent, which answers;
// the restarted agent removes the orphan container of the killed run; when the agent running
// the retry is killed too and no eligible agent is left, the invocation is dead-lettered.
func TestAgentKilledMidInvocation(t *testing.T) {
	suffix := randHex(3)
	a, b := "e2e-kill-a-"+suffix, "e2e-kill-b-"+suffix
	c := newCluster(t, agentFaultRules, a, b)
	c.startEngine()
	c.addAgent(a, map[string]string{"pool": "e2e"})
	c.addAgent(b, map[string]string{"pool": "e2e"})
	c.waitAgents(true, a, b)
	other := map[string]string{a: b, b: a}

	sub := c.mosquittoSub("observer", "obs", nil, "deviceless/results/#", "deviceless/deadletter", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	// 1. Retry on the other agent.
	c.pub("dev", "e2e/slow", `{}`, 1)
	victim, inv := c.waitRunning("slow", "", a, b)
	c.agents[victim].Kill()
	res := decode[result](t, waitMessage(t, sub, 60*time.Second, "deviceless/results/slow", fmt.Sprintf(`"id":%q`, inv)))
	if res.Status != "ok" || res.Agent != other[victim] || compact(res.Output) != `{"attempt":2}` {
		t.Fatalf("after killing %s: result %+v (output %s); want ok from %s on attempt 2", victim, res, res.Output, other[victim])
	}
	c.engine.out.WaitLine(t, 5*time.Second, "retrying invocation", "id="+inv, "agent="+other[victim])
	var rec invocationRecord
	for _, r := range c.invocations() {
		if r.ID == inv {
			rec = r
		}
	}
	if rec.Attempts != 2 || rec.Agent != other[victim] {
		t.Fatalf("/api/v1/invocations: %+v; want 2 attempts ending on %s", rec, other[victim])
	}
	if n := len(messages(sub, "deviceless/deadletter")); n != 0 {
		t.Fatalf("%d dead letters after a successful retry", n)
	}

	// The killed agent's container is an orphan; the agent removes it when it comes back.
	if len(containers(t, c.socket, victim)) == 0 {
		t.Fatalf("no orphan container of %s after SIGKILL", victim)
	}
	c.waitAgents(false, victim)
	c.startAgent(victim)
	c.waitAgents(true, victim)
	waitFor(t, 60*time.Second, "the restarted agent to remove its orphan container", func() bool {
		return len(containers(t, c.socket, victim)) == 0
	})

	// 2. Both agents die mid-invocation: dead-lettered once none is left.
	c.pub("dev", "e2e/hang", `{}`, 1)
	first, inv := c.waitRunning("hang", "", a, b)
	c.agents[first].Kill()
	second, _ := c.waitRunning("hang", inv, other[first])
	c.agents[second].Kill()
	dl := decode[struct {
		Reason     string   `json:"reason"`
		Tried      []string `json:"tried"`
		Invocation struct {
			ID      string `json:"id"`
			Attempt int    `json:"attempt"`
		} `json:"invocation"`
	}](t, waitMessage(t, sub, 60*time.Second, "deviceless/deadletter", fmt.Sprintf(`"id":%q`, inv)))
	if strings.Join(dl.Tried, ",") != first+","+second || dl.Invocation.Attempt != 2 ||
		!strings.Contains(dl.Reason, "no result from agent "+second) || !strings.Contains(dl.Reason, "no other eligible agent") {
		t.Fatalf("dead letter %+v; want tried [%s %s], attempt 2, no other eligible agent", dl, first, second)
	}
	res = decode[result](t, waitMessage(t, sub, 10*time.Second, "deviceless/results/hang", fmt.Sprintf(`"id":%q`, inv)))
	if res.Status != "timeout" {
		t.Fatalf("hang result %+v; want status timeout", res)
	}
	if n := len(messages(sub, "deviceless/deadletter")); n != 1 {
		t.Fatalf("%d dead letters; want 1", n)
	}
}

// stream publishes numbered QoS 1 events, one mosquitto_pub per event with a persistent
// session (client id fixed, clean start off), like a device that keeps what the broker did not
// acknowledge and sends it again: a failed publish is retried until the broker acknowledges it.
// With hold, no attempt starts while gen is 2 (engine down); failed ones wait for gen 3.
type stream struct {
	c        *cluster
	clientID string
	topic    string
	gen      *atomic.Int32 // engine generation, read when an attempt starts
	hold     bool          // no attempt while gen is 2
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	acked   map[int]int32 // seq → generation when the acknowledged attempt started
	retried map[int]bool  // seq → at least one attempt failed
}

func (c *cluster) startStream(clientID, topic string, base int, gen *atomic.Int32, hold bool, pace time.Duration) *stream {
	s := &stream{c: c, clientID: clientID, topic: topic, gen: gen, hold: hold,
		stop: make(chan struct{}), done: make(chan struct{}), acked: map[int]int32{}, retried: map[int]bool{}}
	go func() {
		defer close(s.done)
		for seq := base + 1; ; seq++ {
			select {
			case <-s.stop:
				return
			default:
			}
			for {
				g := gen.Load()
				if g == 2 && s.hold {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				err := c.tryPub("dev", clientID, topic, fmt.Sprintf(`{"seq": %d}`, seq), 1)
				if err == nil {
					s.mu.Lock()
					s.acked[seq] = g
					s.mu.Unlock()
					break
				}
				s.mu.Lock()
				s.retried[seq] = true
				s.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(pace)
		}
	}()
	return s
}

// ackedIn counts events acknowledged in attempts started in generation g.
func (s *stream) ackedIn(g int32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.acked {
		if v == g {
			n++
		}
	}
	return n
}

func (s *stream) finish() {
	close(s.stop)
	<-s.done
}

// TestEngineKilledDuringQoS1Stream SIGKILLs the engine (embedded broker with a store) while
// devices stream QoS 1 events from persistent sessions, restarts it on the same store, and
// compares the events with what the rules did. Each event fires two actions: a publish
// carrying now in nanoseconds (so a second evaluation is told apart from a redelivery) and
// an actuation of a sim GPIO line on an agent.
//
// Asserted:
//   - no event is lost: every event a device saw acknowledged fires, whichever engine
//     acknowledged it (the durable intake journals QoS 1 events before the PUBACK and
//     delivers what was not evaluated again after the restart);
//   - no actuation happens twice: the agent applies each actuation id once, and an event
//     evaluated again after the restart sends its actuations with the same ids;
//   - every event first sent to the restarted engine fires exactly once.
//
// Measured (logged): events evaluated by both engines (evaluated, not yet committed at the
// kill: their publish actions happen twice, as QoS 1 allows), and the repeated actuations
// the agent recognised.
func TestEngineKilledDuringQoS1Stream(t *testing.T) {
	const agent = "edge-kill"
	const rules = `
rules:
  - name: stream
    on: e2e/stream/+
    do:
      - publish: {topic: '"e2e/fired"', payload: '{"seq": payload.seq, "at": now.UnixNano()}', qos: 1}
      - actuate: {line: fan, value: 'int(payload.seq) % 2 == 0', target: {agent: edge-kill}}
`
	c := newCluster(t, rules, agent)
	c.startEngine()
	c.addAgent(agent, map[string]string{"pool": "kill"})
	c.waitAgents(true, agent)
	obs := c.observe("obs-stream-"+randHex(3), "e2e/fired", "e2e/probe")
	obs.waitReady(c, "e2e/probe")

	var gen atomic.Int32
	gen.Store(1)
	const publishers, perPhase = 4, 60
	var streams []*stream
	for i := range publishers {
		streams = append(streams, c.startStream(fmt.Sprintf("dev-stream-%d-%s", i, randHex(3)), fmt.Sprintf("e2e/stream/%d", i), i*100000, &gen, true, 5*time.Millisecond))
	}
	acked := func(g int32) int {
		n := 0
		for _, s := range streams {
			n += s.ackedIn(g)
		}
		return n
	}
	waitFor(t, 120*time.Second, fmt.Sprintf("%d events acknowledged by the first engine", perPhase), func() bool { return acked(1) >= perPhase })

	gen.Store(2) // attempts from here on wait for the restarted engine
	c.engine.Kill()
	c.startEngine()
	obs.waitReady(c, "e2e/probe")
	gen.Store(3)
	waitFor(t, 120*time.Second, fmt.Sprintf("%d events acknowledged by the restarted engine", perPhase), func() bool { return acked(3) >= perPhase })
	for _, s := range streams {
		s.finish()
	}

	// Firings, per event: distinct payloads (a redelivery repeats the payload, a second
	// evaluation has another time).
	firings := func() map[int]map[string]bool {
		out := map[int]map[string]bool{}
		for _, m := range obs.messages("e2e/fired") {
			var f struct {
				Seq int `json:"seq"`
			}
			if json.Unmarshal([]byte(m), &f) != nil {
				continue
			}
			if out[f.Seq] == nil {
				out[f.Seq] = map[string]bool{}
			}
			out[f.Seq][m] = true
		}
		return out
	}

	type event struct {
		seq     int
		gen     int32
		retried bool
	}
	var events []event
	retried := 0
	for _, s := range streams {
		s.mu.Lock()
		for seq, g := range s.acked {
			events = append(events, event{seq, g, s.retried[seq]})
			if s.retried[seq] {
				retried++
			}
		}
		s.mu.Unlock()
	}
	sort.Slice(events, func(i, j int) bool { return events[i].seq < events[j].seq })
	// A last event behind everything else: once it fired, every earlier event of its
	// publisher has been evaluated (one publisher's events are evaluated in order).
	c.pub("dev", "e2e/stream/0", `{"seq": -1}`, 1)
	waitFor(t, 30*time.Second, "the last event to fire", func() bool { return len(firings()[-1]) > 0 })
	waitFor(t, 60*time.Second, "every acknowledged event to fire", func() bool {
		f := firings()
		for _, e := range events {
			if len(f[e.seq]) == 0 {
				return false
			}
		}
		return true
	})

	f := firings()
	var lost, twice, resent []int
	for _, e := range events {
		n := len(f[e.seq])
		switch {
		case e.gen == 3 && !e.retried && n != 1:
			t.Errorf("event %d acknowledged by the restarted engine fired %d times", e.seq, n)
		case n == 0:
			lost = append(lost, e.seq)
		case n > 1:
			twice = append(twice, e.seq)
		}
		if e.retried {
			resent = append(resent, e.seq)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged events never fired: %v", len(lost), lost)
	}

	// Actuations as the agent applied them: one per event, none twice. A device that sent
	// an event again after a failed publish sent a second message, which may actuate
	// again under another id; nothing else may.
	applied := func() (total int, ids map[string]bool) {
		ids = map[string]bool{}
		for _, l := range c.agents[agent].out.Match(`msg=actuated`, "line=fan") {
			ids[logValue(l, "id")] = true
			total++
		}
		return total, ids
	}
	want := len(events) + 1 // and the last event
	waitFor(t, 60*time.Second, fmt.Sprintf("%d actuations applied", want), func() bool {
		_, ids := applied()
		return len(ids) >= want
	})
	total, ids := applied()
	if total != len(ids) {
		t.Errorf("the agent applied %d actuations with %d distinct ids: an actuation was applied twice", total, len(ids))
	}
	if len(ids) > want+retried {
		t.Errorf("%d distinct actuations for %d events (%d sent twice by their device)", len(ids), want, retried)
	}
	repeats := len(c.agents[agent].out.Match("actuation repeated"))
	t.Logf("engine SIGKILL during a QoS 1 stream from %d persistent-session publishers: %d events; "+
		"%d acknowledged by the killed engine, %d by the restarted one; %d sent again after a failed publish %v; "+
		"lost %d; evaluated by both engines %d %v; actuations applied %d, repeats recognised by the agent %d",
		publishers, len(events), acked(1), acked(3), len(resent), resent, len(lost), len(twice), twice, total, repeats)
}

// snapshot lists a stream's acknowledged events.
func (s *stream) snapshot() (acked map[int]int32, retried map[int]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acked, retried = map[int]int32{}, map[int]bool{}
	for k, v := range s.acked {
		acked[k] = v
	}
	for k, v := range s.retried {
		retried[k] = v
	}
	return acked, retried
}

const loadRules = `
functions:
  echo:
    runtime: sh
    code: |
      read -r inv
      seq=$(echo "$inv" | sed -n 's/.*"args":{"seq":\([-0-9]*\)}.*/\1/p')
      echo "{\"seq\":$seq}"
    timeout: 5s
    memory: 16Mi
    warm: {idle: 60s}
rules:
  - name: load
    on: e2e/load
    do:
      - invoke: echo
        target: {labels: {pool: e2e}}
        args: {seq: payload.seq}
`

// TestEngineRestartUnderLoad stops the engine with SIGTERM while a device streams QoS 1
// events that each invoke a function on one of two agents, and starts it again on the same
// store: the engine exits 0, the agents reconnect to their persistent sessions
// (session_present=true) and serve again, and every event sent to the restarted engine gets
// exactly one result, and every acknowledged event, also those sent during the stop, gets a
// result or a dead letter. Measured and logged:
//   - the agents' last wills mark them offline when the broker stops; until they reconnect to
//     the restarted engine, events that invoke a function are dead-lettered at once
//     ("no online agent matches the target"), as the dispatch contract says.
func TestEngineRestartUnderLoad(t *testing.T) {
	suffix := randHex(3)
	a, b := "e2e-load-a-"+suffix, "e2e-load-b-"+suffix
	c := newCluster(t, loadRules, a, b)
	c.startEngine()
	c.addAgent(a, map[string]string{"pool": "e2e"})
	c.addAgent(b, map[string]string{"pool": "e2e"})
	c.waitAgents(true, a, b)
	obs := c.observe("obs-load-"+suffix, "deviceless/results/echo", "deviceless/deadletter", "e2e/probe")
	obs.waitReady(c, "e2e/probe")

	var gen atomic.Int32
	gen.Store(1)
	s := c.startStream("dev-load-"+suffix, "e2e/load", 0, &gen, false, 50*time.Millisecond)
	results := func() map[int][]result {
		out := map[int][]result{}
		for _, m := range obs.messages("deviceless/results/echo") {
			var r result
			var o struct {
				Seq int `json:"seq"`
			}
			if json.Unmarshal([]byte(m), &r) != nil || json.Unmarshal(r.Output, &o) != nil {
				continue
			}
			out[o.Seq] = append(out[o.Seq], r)
		}
		return out
	}
	waitFor(t, 120*time.Second, "10 results before the restart", func() bool { return len(results()) >= 10 })

	gen.Store(2)
	if err := c.engine.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("engine exit after SIGTERM: %v", err)
	}
	c.engine.out.WaitLine(t, time.Second, "engine stopped")
	c.startEngine()
	c.waitAgents(true, a, b)
	for _, id := range []string{a, b} {
		c.agents[id].out.WaitLine(t, 30*time.Second, "connected to broker", "session_present=true")
	}
	obs.waitReady(c, "e2e/probe")
	gen.Store(3)
	waitFor(t, 120*time.Second, "20 events acknowledged by the restarted engine", func() bool { return s.ackedIn(3) >= 20 })
	s.finish()

	acked, retried := s.snapshot()
	// Every acknowledged event gets a result or a dead letter, whichever engine took it:
	// the first one evaluates what it acknowledged until its intake closes (and journals
	// it), and refuses to acknowledge after that.
	traced := func() bool {
		r := results()
		dl := strings.Join(obs.messages("deviceless/deadletter"), "\n")
		for seq := range acked {
			if len(r[seq]) == 0 && !strings.Contains(dl, fmt.Sprintf(`"seq":%d}`, seq)) {
				return false
			}
		}
		return true
	}
	waitFor(t, 60*time.Second, "a result or a dead letter for every acknowledged event", traced)
	r := results()
	deadLettered := map[int]bool{}
	for _, m := range obs.messages("deviceless/deadletter") {
		var dl struct {
			Invocation struct {
				Args struct {
					Seq int `json:"seq"`
				} `json:"args"`
			} `json:"invocation"`
		}
		if json.Unmarshal([]byte(m), &dl) == nil {
			deadLettered[dl.Invocation.Args.Seq] = true
		}
	}
	byAgent := map[string]int{}
	// Per generation: events, with one ok result, dead-lettered, with no trace, with several results.
	counts := map[int32][5]int{}
	var untraced []int
	for seq, g := range acked {
		n := len(r[seq])
		cs := counts[g]
		cs[0]++
		switch {
		case n == 1 && r[seq][0].Status == "ok":
			cs[1]++
		case deadLettered[seq]:
			cs[2]++
		case n == 0:
			cs[3]++
			untraced = append(untraced, seq)
		default:
			cs[4]++
		}
		counts[g] = cs
		if g != 3 || retried[seq] {
			continue
		}
		if n != 1 || r[seq][0].Status != "ok" {
			t.Errorf("event %d sent to the restarted engine: results %+v; want one ok", seq, r[seq])
			continue
		}
		byAgent[r[seq][0].Agent]++
	}
	if byAgent[a] == 0 || byAgent[b] == 0 {
		t.Errorf("after the restart the results came from %v; want both agents", byAgent)
	}
	sort.Ints(untraced)
	if len(untraced) > 0 {
		t.Errorf("acknowledged events with no result and no dead letter: %v", untraced)
	}
	t.Logf("engine SIGTERM + restart under load, per generation (1 before the stop, 2 from SIGTERM until the restarted engine and both agents are back, 3 after) "+
		"[events, one ok result, dead-lettered, no trace, several results]: 1=%v 2=%v 3=%v; acknowledged events with no result and no dead letter: %v; after the restart results by agent %v",
		counts[1], counts[2], counts[3], untraced, byAgent)
}
