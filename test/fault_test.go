package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
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
  - name: sentinel
    on: e2e/sentinel
    do:
      - invoke: hang
        target: {agent: nobody}
`

// deadLetterSentinel publishes an event whose invocation the engine dead-letters at once
// (no agent "nobody") and waits for that dead letter: every dead letter the engine
// published before it has arrived by then (one publisher, one topic, in order).
func (c *cluster) deadLetterSentinel(sub *proc) {
	c.t.Helper()
	mark := "sentinel-" + randHex(4)
	c.pub("dev", "e2e/sentinel", fmt.Sprintf(`{"mark": %q}`, mark), 1)
	waitMessage(c.t, sub, 30*time.Second, "deviceless/deadletter", mark, "no online agent matches the target")
}

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
	c.deadLetterSentinel(sub)
	if n := len(messages(sub, "deviceless/deadletter")); n != 1 {
		t.Fatalf("%d dead letters after a successful retry (and the sentinel's)", n-1)
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
	c.deadLetterSentinel(sub)
	if n := len(messages(sub, "deviceless/deadletter")); n != 3 {
		t.Fatalf("%d dead letters besides the two sentinels'; want 1", n-2)
	}
}

// generation is the engine generation (1 the first engine, 2 while it is down, 3 the
// restarted one) that a stream reads when an attempt starts. Streams that hold wait for a
// change on a channel, not by polling.
type generation struct {
	mu      sync.Mutex
	g       int32
	changed chan struct{}
}

func newGeneration(g int32) *generation { return &generation{g: g, changed: make(chan struct{})} }

func (g *generation) Load() int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g
}

func (g *generation) Store(v int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.g = v
	close(g.changed)
	g.changed = make(chan struct{})
}

// next returns the generation and a channel closed when it changes.
func (g *generation) next() (int32, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g, g.changed
}

// stream publishes numbered QoS 1 events, one mosquitto_pub per event with a persistent
// session (client id fixed, clean start off), like a device that keeps what the broker did not
// acknowledge and sends it again: a failed publish is retried (after 20 ms, the device's retry
// interval) until the broker acknowledges it. With hold, no attempt starts while gen is 2
// (engine down); failed ones wait for gen 3.
type stream struct {
	c        *cluster
	clientID string
	topic    string
	gen      *generation // engine generation, read when an attempt starts
	hold     bool        // no attempt while gen is 2
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	acked   map[int]int32        // seq → generation when the acknowledged attempt started
	retried map[int]bool         // seq → at least one attempt failed
	times   map[int][2]time.Time // seq → when the acknowledged attempt started and ended
}

func (c *cluster) startStream(clientID, topic string, base int, gen *generation, hold bool, pace time.Duration) *stream {
	s := &stream{c: c, clientID: clientID, topic: topic, gen: gen, hold: hold,
		stop: make(chan struct{}), done: make(chan struct{}), acked: map[int]int32{}, retried: map[int]bool{}, times: map[int][2]time.Time{}}
	go func() {
		defer close(s.done)
		for seq := base + 1; ; seq++ {
			select {
			case <-s.stop:
				return
			default:
			}
			for {
				g, changed := gen.next()
				if g == 2 && s.hold {
					select {
					case <-changed:
					case <-s.stop:
						return
					}
					continue
				}
				began := time.Now()
				err := c.tryPub("dev", clientID, topic, fmt.Sprintf(`{"seq": %d}`, seq), 1)
				if err == nil {
					s.mu.Lock()
					s.acked[seq] = g
					s.times[seq] = [2]time.Time{began, time.Now()}
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

	gen := newGeneration(1)
	const publishers, perPhase = 4, 60
	var streams []*stream
	for i := range publishers {
		streams = append(streams, c.startStream(fmt.Sprintf("dev-stream-%d-%s", i, randHex(3)), fmt.Sprintf("e2e/stream/%d", i), i*100000, gen, true, 5*time.Millisecond))
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

// snapshot lists a stream's acknowledged events: the generation and the start and end of
// the acknowledged attempt, and which ones needed more than one attempt.
func (s *stream) snapshot() (acked map[int]int32, retried map[int]bool, times map[int][2]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acked, retried, times = map[int]int32{}, map[int]bool{}, map[int][2]time.Time{}
	for k, v := range s.acked {
		acked[k] = v
	}
	for k, v := range s.retried {
		retried[k] = v
	}
	for k, v := range s.times {
		times[k] = v
	}
	return acked, retried, times
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

// The dead-letter reasons of the dispatcher (engine/dispatch.go) an event may meet around
// an engine restart.
const (
	reasonNotDispatched = "engine stopping: not dispatched"          // evaluated after the drain closed the dispatcher
	reasonStopped       = "engine stopped before the result arrived" // in flight when the shutdown grace ran out
	reasonNoAgent       = "no online agent matches the target"       // the agents not back yet
)

// TestEngineRestartUnderLoad stops the engine with SIGTERM while a device streams QoS 1
// events that each invoke a function on one of two agents, and starts it again on the same
// store: the engine exits 0, the agents reconnect to their persistent sessions
// (session_present=true) and serve again, and every acknowledged event has the outcome its
// moment allows, and no other. By when its acknowledged attempt started and ended:
//   - acknowledged by the first engine at least 1 s before SIGTERM: one ok result. It was
//     evaluated and dispatched while both agents served, and the drain waits 3 s for it.
//   - acknowledged by the first engine later (the broker acknowledges until it stops): one
//     ok result, or a dead letter because the engine was stopping: evaluated after the
//     drain had closed the dispatcher (it closes once nothing is in flight) or still in
//     flight when the 3 s grace ran out.
//   - acknowledged by the restarted engine before both agents were back: one ok result, or
//     a dead letter "no online agent matches the target" (the agents' last wills marked
//     them offline when the broker stopped; the dispatch contract dead-letters at once).
//   - acknowledged by the restarted engine after that: one ok result.
//
// A dead letter comes with its error result (same invocation id and reason). An event the
// device sent again after a failed attempt may have one more outcome, allowed for the
// stop or the restart: the failed attempt may have reached the stopping broker, whose
// acknowledgement was lost.
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

	gen := newGeneration(1)
	s := c.startStream("dev-load-"+suffix, "e2e/load", 0, gen, false, 50*time.Millisecond)
	// outcomes groups what the observer received by event and invocation id: distinct
	// result and dead-letter payloads (QoS 1 may deliver one twice).
	type outcome struct {
		results     map[string]result // by payload (from the history: re-encoded)
		deadLetters map[string]string // payload → reason
		recorded    bool              // in the restarted engine's history
	}
	history := false // the restarted engine answers /api/v1/invocations
	outcomes := func() map[int]map[string]*outcome {
		seqOf := map[string]int{}
		out := map[int]map[string]*outcome{}
		get := func(id string) *outcome {
			seq, ok := seqOf[id]
			if !ok {
				return nil
			}
			if out[seq] == nil {
				out[seq] = map[string]*outcome{}
			}
			if out[seq][id] == nil {
				out[seq][id] = &outcome{results: map[string]result{}, deadLetters: map[string]string{}}
			}
			return out[seq][id]
		}
		dls := obs.messages("deviceless/deadletter")
		for _, m := range dls {
			var dl struct {
				Reason     string `json:"reason"`
				Invocation struct {
					ID   string `json:"id"`
					Args struct {
						Seq int `json:"seq"`
					} `json:"args"`
				} `json:"invocation"`
			}
			if json.Unmarshal([]byte(m), &dl) == nil && dl.Invocation.ID != "" {
				seqOf[dl.Invocation.ID] = dl.Invocation.Args.Seq
				get(dl.Invocation.ID).deadLetters[m] = dl.Reason
			}
		}
		rs := obs.messages("deviceless/results/echo")
		for _, m := range rs {
			var r result
			var o struct {
				Seq int `json:"seq"`
			}
			if json.Unmarshal([]byte(m), &r) == nil && json.Unmarshal(r.Output, &o) == nil {
				seqOf[r.ID] = o.Seq
			}
		}
		for _, m := range rs {
			var r result
			if json.Unmarshal([]byte(m), &r) == nil {
				if oc := get(r.ID); oc != nil {
					oc.results[m] = r
				}
			}
		}
		// Results are QoS 0 (docs/design.md): the observer misses those published while
		// it reconnects to the restarted broker. The restarted engine's history has them.
		if history {
			for _, rec := range c.invocations() {
				var o struct {
					Seq int `json:"seq"`
				}
				if rec.Status == "ok" && json.Unmarshal(rec.Output, &o) == nil {
					seqOf[rec.ID] = o.Seq
				}
				if oc := get(rec.ID); oc != nil {
					r := result{ID: rec.ID, Agent: rec.Agent, Function: rec.Function, Rule: rec.Rule, Status: rec.Status, Output: rec.Output, Error: rec.Error}
					b, _ := json.Marshal(r)
					oc.results[string(b)] = r
					oc.recorded = true
				}
			}
		}
		return out
	}
	waitFor(t, 120*time.Second, "10 results of events acknowledged 1 s ago or more", func() bool {
		_, _, times := s.snapshot()
		oc, n := outcomes(), 0
		for seq, tm := range times {
			if time.Since(tm[1]) > time.Second && len(oc[seq]) > 0 {
				n++
			}
		}
		return n >= 10
	})

	tTerm := time.Now()
	gen.Store(2)
	if err := c.engine.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("engine exit after SIGTERM: %v", err)
	}
	tExit := time.Now()
	c.engine.out.WaitLine(t, time.Second, "engine stopped")
	c.startEngine()
	c.waitAgents(true, a, b)
	for _, id := range []string{a, b} {
		c.agents[id].out.WaitLine(t, 30*time.Second, "connected to broker", "session_present=true")
	}
	obs.waitReady(c, "e2e/probe")
	tBack := time.Now()
	history = true
	gen.Store(3)
	waitFor(t, 120*time.Second, "20 events acknowledged by the restarted engine", func() bool { return s.ackedIn(3) >= 20 })
	s.finish()
	acked, retried, times := s.snapshot()

	// Nothing is left in flight, and a last event's result comes after every earlier
	// message of the restarted engine: no outcome can come later.
	var missing []int
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		oc := outcomes()
		missing = missing[:0]
		for seq := range acked {
			if len(oc[seq]) == 0 {
				missing = append(missing, seq)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Ints(missing)
			for _, seq := range missing {
				t.Errorf("event %d (attempt %s..%s, SIGTERM %s, exit %s, agents back %s, resent %v): no outcome", seq,
					times[seq][0].Format("15:04:05.000"), times[seq][1].Format("15:04:05.000"), tTerm.Format("15:04:05.000"),
					tExit.Format("15:04:05.000"), tBack.Format("15:04:05.000"), retried[seq])
			}
			t.Fatalf("dead letters:\n%s", strings.Join(obs.messages("deviceless/deadletter"), "\n"))
		}
	}
	waitFor(t, 30*time.Second, "no invocation in flight", func() bool {
		v := c.agentsView()
		return v[a].InFlight == 0 && v[b].InFlight == 0
	})
	c.pub("dev", "e2e/load", `{"seq": -1}`, 1)
	waitFor(t, 30*time.Second, "the last event's result", func() bool { return len(outcomes()[-1]) == 1 })

	type class struct {
		name    string
		allowed []string // "ok" and dead-letter reasons
	}
	var (
		running   = class{"acknowledged by the first engine 1 s or more before SIGTERM", []string{"ok"}}
		stopping  = class{"acknowledged by the first engine from 1 s before SIGTERM", []string{"ok", reasonNotDispatched, reasonStopped}}
		restarted = class{"acknowledged by the restarted engine before both agents were back", []string{"ok", reasonNoAgent}}
		around    = class{"acknowledged by the first or the restarted engine", []string{"ok", reasonNotDispatched, reasonStopped, reasonNoAgent}}
		back      = class{"acknowledged by the restarted engine after both agents were back", []string{"ok"}}
	)
	classOf := func(seq int) class {
		began, ended := times[seq][0], times[seq][1]
		switch {
		case ended.Before(tTerm.Add(-time.Second)):
			return running
		case ended.Before(tExit):
			return stopping
		case began.After(tExit) && began.Before(tBack):
			return restarted
		case !began.Before(tBack):
			return back
		default: // started before the first engine exited, acknowledged by the restarted one
			return around
		}
	}
	// kind names an invocation's outcome ("ok" or the dead letter's reason); "" when it
	// is not exactly one outcome. The observer and the history may both show a result:
	// they must agree. A dead letter's error result is required where it is kept for sure,
	// in the restarted engine's history (the reason no agent is the restarted engine's).
	kind := func(seq int, oc *outcome) string {
		statuses := map[string]bool{}
		for _, r := range oc.results {
			statuses[r.Status+" "+r.Error+" "+compact(r.Output)] = true
		}
		switch {
		case len(oc.deadLetters) == 0 && len(statuses) == 1:
			for _, r := range oc.results {
				var o struct {
					Seq int `json:"seq"`
				}
				if r.Status == "ok" && json.Unmarshal(r.Output, &o) == nil && o.Seq == seq {
					return "ok"
				}
			}
		case len(oc.deadLetters) == 1 && len(statuses) <= 1:
			for _, reason := range oc.deadLetters {
				for _, r := range oc.results {
					if r.Status != "error" || r.Error != reason {
						return ""
					}
				}
				for _, known := range []string{reasonNotDispatched, reasonStopped, reasonNoAgent} {
					if strings.HasPrefix(reason, known) && (known != reasonNoAgent || oc.recorded) {
						return known
					}
				}
			}
		}
		return ""
	}
	allows := func(cl class, k string) bool {
		for _, a := range cl.allowed {
			if a == k {
				return true
			}
		}
		return false
	}
	oc := outcomes()
	tally := map[string]map[string]int{} // class → outcome → events
	byAgent := map[string]int{}
	seqs := make([]int, 0, len(acked))
	for seq := range acked {
		seqs = append(seqs, seq)
	}
	sort.Ints(seqs)
	for _, seq := range seqs {
		cl := classOf(seq)
		if tally[cl.name] == nil {
			tally[cl.name] = map[string]int{}
		}
		var kinds []string
		for _, o := range oc[seq] {
			kinds = append(kinds, kind(seq, o))
		}
		sort.Strings(kinds)
		extra := 0
		if retried[seq] {
			extra = 1
		}
		// The acknowledged attempt's outcome is allowed for its moment; one more, of a
		// failed attempt, only around the stop.
		ok := len(kinds) >= 1 && len(kinds) <= 1+extra
		matched := false
		for _, k := range kinds {
			switch {
			case k == "":
				ok = false
			case !matched && allows(cl, k):
				matched = true
			case !allows(around, k):
				ok = false
			}
		}
		if !ok || !matched {
			var detail []string
			for id, o := range oc[seq] {
				detail = append(detail, fmt.Sprintf("%s: results %v, dead letters %v", id, o.results, o.deadLetters))
			}
			t.Errorf("event %d, %s (attempt %s..%s, SIGTERM %s, exit %s, agents back %s, resent %v): outcomes %q, want one of %q\n%s",
				seq, cl.name, times[seq][0].Format("15:04:05.000"), times[seq][1].Format("15:04:05.000"), tTerm.Format("15:04:05.000"),
				tExit.Format("15:04:05.000"), tBack.Format("15:04:05.000"), retried[seq], kinds, cl.allowed, strings.Join(detail, "\n"))
		}
		tally[cl.name][strings.Join(kinds, "+")]++
		if cl.name == back.name && !retried[seq] {
			for _, o := range oc[seq] {
				for _, r := range o.results {
					byAgent[r.Agent]++
					break
				}
			}
		}
	}
	if byAgent[a] == 0 || byAgent[b] == 0 {
		t.Errorf("after the restart the results came from %v; want both agents", byAgent)
	}
	if tally[running.name]["ok"] == 0 || tally[back.name]["ok"] < 20 {
		t.Errorf("outcomes %v: want ok results before the stop and 20 or more after the agents were back", tally)
	}
	t.Logf("engine SIGTERM + restart under load: %d acknowledged events, by moment and outcome: %v; after the restart results by agent %v",
		len(acked), tally, byAgent)
}
