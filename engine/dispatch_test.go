package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// The dispatcher alone, with a fake clock, a recording publisher and a fake agent picker:
// each case runs a script of steps and compares what went out, what finished and the
// counters with what it wants.
func TestDispatcher(t *testing.T) {
	// A function with a 1s timeout and a 1s start grace: an attempt's budget is 2s, its
	// timer fires 2.25s after it was sent.
	const timeout = 2250 * time.Millisecond
	// A timed-out attempt's message may still wait for the agent in the broker until it
	// expires (whole seconds, swept once a second): its in-flight slot comes back then.
	const released = 3 * time.Second
	one, all := protocol.Target{Pick: protocol.PickOne}, protocol.Target{Pick: protocol.PickAll}
	cases := []struct {
		name   string
		agents []string
		limits DispatchConfig // zero: 3 attempts, 100ms backoff, 1s start grace
		steps  []step
		want   dispatchRun
	}{{
		name:   "result ok",
		agents: []string{"a1"},
		steps:  []step{invoke(one), answer("a1", protocol.StatusOK)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 1},
		},
	}, {
		name:   "the least busy agent gets it",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), invoke(one), answer("a2", protocol.StatusOK), answer("a1", protocol.StatusOK)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-2", Attempt: 1}},
			Finished: []outcome{
				{ID: "ev-2", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 1},
				{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1},
			},
			Replies: []string{"ev-2", "ev-1"},
			Counts:  counts{Attempts: 2},
		},
	}, {
		name:   "timeout: retried with the same id on another agent after the backoff",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), advance(timeout), advance(100 * time.Millisecond), answer("a2", protocol.StatusOK), advance(released)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-1", Attempt: 2, At: timeout + 100*time.Millisecond}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 2,
				At: timeout + 100*time.Millisecond}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2, Timeouts: 1, Retries: 1},
		},
	}, {
		name:   "rejected: retried elsewhere",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), answer("a1", protocol.StatusRejected), advance(100 * time.Millisecond), answer("a2", protocol.StatusOK)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-1", Attempt: 2, At: 100 * time.Millisecond}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 2, At: 100 * time.Millisecond}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 2, Retries: 1},
		},
	}, {
		name:   "rejected everywhere: dead letter",
		agents: []string{"a1"},
		steps:  []step{invoke(one), answer("a1", protocol.StatusRejected)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1},
				{DeadLetter: "agent a1 rejected the invocation: busy; no other eligible agent", ID: "ev-1", Attempt: 1, Tried: []string{"a1"}}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "rejected",
				Error: "agent a1 rejected the invocation: busy; no other eligible agent", Attempts: 1}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 1, DeadLetters: 1},
		},
	}, {
		name:   "expired: a result, not retried",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), answer("a1", protocol.StatusExpired)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "expired", Error: "busy", Attempts: 1}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 1},
		},
	}, {
		name:   "dropped by the broker: retried at once on another agent",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), dropped("a1", "a1"), advance(100 * time.Millisecond), answer("a2", protocol.StatusOK)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-1", Attempt: 2, At: 100 * time.Millisecond}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 2,
				At: 100 * time.Millisecond}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2, Dropped: 1, Retries: 1},
		},
	}, {
		name:   "dropped without another agent: rejected, dead letter without waiting for the timeout",
		agents: []string{"a1"},
		steps:  []step{invoke(one), dropped("a1", "a1"), advance(0)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1},
				{DeadLetter: "not delivered: the broker's queue for agent a1 is full (broker.limits.max_queued); no other eligible agent", ID: "ev-1", Attempt: 1, Tried: []string{"a1"}}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "rejected",
				Error: "not delivered: the broker's queue for agent a1 is full (broker.limits.max_queued); no other eligible agent", Attempts: 1}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 1, Dropped: 1, DeadLetters: 1},
		},
	}, {
		name:   "a drop reported for another agent than the attempt's is ignored",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), dropped("a2", "a1"), advance(0), answer("a1", protocol.StatusOK)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 1},
		},
	}, {
		name:   "a timed-out attempt keeps its slot until the broker has dropped its message",
		agents: []string{"a1"},
		steps:  []step{invoke(one), advance(timeout)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1},
				{DeadLetter: "no result from agent a1 within 2s; no other eligible agent", ID: "ev-1", Attempt: 1, Tried: []string{"a1"}, At: timeout}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "timeout",
				Error: "no result from agent a1 within 2s; no other eligible agent", Attempts: 1, At: timeout}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 1, Timeouts: 1, DeadLetters: 1},
			InFlight: map[string]int{"a1": 1},
		},
	}, {
		name:   "timeouts: dead letter after the attempts",
		agents: []string{"a1", "a2", "a3"},
		limits: DispatchConfig{Attempts: 2},
		steps:  []step{invoke(one), advance(timeout), advance(100 * time.Millisecond), advance(timeout), advance(released)},
		want: dispatchRun{
			Sent: []sent{
				{To: "a1", ID: "ev-1", Attempt: 1},
				{To: "a2", ID: "ev-1", Attempt: 2, At: timeout + 100*time.Millisecond},
				{DeadLetter: "no result from agent a2 within 2s", ID: "ev-1", Attempt: 2, Tried: []string{"a1", "a2"}, At: 2*timeout + 100*time.Millisecond},
			},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "timeout",
				Error: "no result from agent a2 within 2s", Attempts: 2, At: 2*timeout + 100*time.Millisecond}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2, Timeouts: 2, Retries: 1, DeadLetters: 1},
		},
	}, {
		name:   "timeout without another agent: dead letter",
		agents: []string{"a1"},
		steps:  []step{invoke(one), advance(timeout), advance(released)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1},
				{DeadLetter: "no result from agent a1 within 2s; no other eligible agent", ID: "ev-1", Attempt: 1, Tried: []string{"a1"}, At: timeout}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "timeout",
				Error: "no result from agent a1 within 2s; no other eligible agent", Attempts: 1, At: timeout}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 1, Timeouts: 1, DeadLetters: 1},
		},
	}, {
		name:  "no agent: dead letter at once",
		steps: []step{invoke(protocol.Target{Agent: "nobody", Pick: protocol.PickOne})},
		want: dispatchRun{
			Sent: []sent{{DeadLetter: `no online agent matches the target {"agent":"nobody","pick":"one"}`, ID: "ev-1"}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Status: "error",
				Error: `no online agent matches the target {"agent":"nobody","pick":"one"}`}},
			Replies: []string{"ev-1"},
			Counts:  counts{DeadLetters: 1},
		},
	}, {
		name:   "pick all: one invocation per agent, the reply gets the first",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(all), answer("a2", protocol.StatusOK), answer("a1", protocol.StatusOK)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-2", Attempt: 1}},
			Finished: []outcome{
				{ID: "ev-2", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 1},
				{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1},
			},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2},
		},
	}, {
		name:   "pick all: a timeout is not retried",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(all), answer("a1", protocol.StatusOK), advance(timeout), advance(released)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-2", Attempt: 1},
				{DeadLetter: "no result from agent a2 within 2s", ID: "ev-2", Attempt: 1, Tried: []string{"a2"}, At: timeout}},
			Finished: []outcome{
				{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1},
				{ID: "ev-2", Function: "f", Rule: "r", Agent: "a2", Status: "timeout", Error: "no result from agent a2 within 2s", Attempts: 1, At: timeout},
			},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2, Timeouts: 1, DeadLetters: 1},
		},
	}, {
		name:   "drain on shutdown dead-letters what is left, then everything new",
		agents: []string{"a1", "a2"},
		// ev-2 is backing off for a retry when the engine stops.
		steps: []step{invoke(one), invoke(one), answer("a2", protocol.StatusRejected), drain(), invoke(one), answer("a1", protocol.StatusOK)},
		want: dispatchRun{
			Sent: []sent{
				{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-2", Attempt: 1},
				{DeadLetter: "engine stopped before the result arrived", ID: "ev-1", Attempt: 1, Tried: []string{"a1"}},
				{DeadLetter: "engine stopped before the result arrived", ID: "ev-2", Attempt: 1, Tried: []string{"a2"}},
				{DeadLetter: "engine stopping: not dispatched", ID: "ev-3", Attempt: 1, Tried: []string{"a1"}},
			},
			Finished: []outcome{
				{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "error", Error: "engine stopped before the result arrived", Attempts: 1},
				{ID: "ev-2", Function: "f", Rule: "r", Agent: "a2", Status: "error", Error: "engine stopped before the result arrived", Attempts: 1},
				{ID: "ev-3", Function: "f", Rule: "r", Agent: "a1", Status: "error", Error: "engine stopping: not dispatched", Attempts: 1},
			},
			Replies: []string{"ev-1", "ev-2", "ev-3"},
			Counts:  counts{Attempts: 2, Retries: 1, DeadLetters: 3, Late: 1},
		},
	}, {
		name:   "a late result is counted late",
		agents: []string{"a1", "a2"},
		steps: []step{invoke(one), advance(timeout), advance(100 * time.Millisecond), answer("a2", protocol.StatusOK),
			answer("a1", protocol.StatusOK), result("a1", `{"id":"unknown","status":"ok"}`, ""), advance(released)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-1", Attempt: 2, At: timeout + 100*time.Millisecond}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 2,
				At: timeout + 100*time.Millisecond}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2, Timeouts: 1, Retries: 1, Late: 2},
		},
	}, {
		name:   "the invocation's id, function and rule, and the topic's agent, win over the result's",
		agents: []string{"a1"},
		steps:  []step{invoke(one), result("a1", `{"id":"other","function":"g","rule":"s","agent":"a9","status":"ok"}`, "ev-1")},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 1},
		},
	}, {
		// Issue 12: a2 answers, on its own result topic, an invocation sent to a1, naming a1.
		name:   "a result from an agent the invocation was not sent to is foreign: ignored",
		agents: []string{"a1", "a2"},
		steps: []step{invoke(protocol.Target{Agent: "a1", Pick: protocol.PickOne}),
			result("a2", `{"id":"ev-1","agent":"a1","function":"f","rule":"r","status":"ok","output":"forged"}`, "ev-1"),
			answer("a1", protocol.StatusOK)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "ok", Attempts: 1}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 1, Foreign: 1},
		},
	}, {
		// Issue 12: a2 answers "rejected" to a1's invocation to have it retried on itself.
		name:   "a rejection from another agent does not pull the invocation over",
		agents: []string{"a1", "a2"},
		steps:  []step{invoke(one), result("a2", `{"id":"ev-1","status":"rejected"}`, "ev-1"), advance(time.Second)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Counts:   counts{Attempts: 1, Foreign: 1},
			InFlight: map[string]int{"a1": 1},
			Pending:  1,
		},
	}, {
		name:   "a result while the retry backs off, from the agent it will go to, is foreign",
		agents: []string{"a1", "a2"},
		steps: []step{invoke(one), answer("a1", protocol.StatusRejected),
			result("a2", `{"id":"ev-1","status":"ok"}`, "ev-1"), advance(100 * time.Millisecond), answer("a2", protocol.StatusOK)},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-1", Attempt: 2, At: 100 * time.Millisecond}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 2, At: 100 * time.Millisecond}},
			Replies:  []string{"ev-1"},
			Counts:   counts{Attempts: 2, Retries: 1, Foreign: 1},
		},
	}, {
		name:   "a result from an agent tried before, after the retry went out, is late",
		agents: []string{"a1", "a2"},
		steps: []step{invoke(one), advance(timeout), advance(100 * time.Millisecond),
			result("a1", `{"id":"ev-1","status":"ok"}`, "ev-1"), answer("a2", protocol.StatusOK), advance(released)},
		want: dispatchRun{
			Sent: []sent{{To: "a1", ID: "ev-1", Attempt: 1}, {To: "a2", ID: "ev-1", Attempt: 2, At: timeout + 100*time.Millisecond}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a2", Status: "ok", Attempts: 2,
				At: timeout + 100*time.Millisecond}},
			Replies: []string{"ev-1"},
			Counts:  counts{Attempts: 2, Timeouts: 1, Retries: 1, Late: 1},
		},
	}, {
		name:   "a malformed result is counted and ignored",
		agents: []string{"a1"},
		steps:  []step{invoke(one), result("a1", `garbage`, "ev-1")},
		want: dispatchRun{
			Sent:     []sent{{To: "a1", ID: "ev-1", Attempt: 1}},
			Counts:   counts{Attempts: 1, Malformed: 1},
			InFlight: map[string]int{"a1": 1},
			Pending:  1,
		},
	}, {
		name:   "arguments that cannot be encoded: dead letter at once",
		agents: []string{"a1"},
		steps:  []step{invokeArgs(one, map[string]any{"x": math.NaN()})},
		want: dispatchRun{
			Sent: []sent{{DeadLetter: "arguments cannot be encoded as JSON: json: unsupported value: NaN", ID: "ev-1"}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Status: "error",
				Error: "arguments cannot be encoded as JSON: json: unsupported value: NaN"}},
			Replies: []string{"ev-1"},
			Counts:  counts{DeadLetters: 1},
		},
	}, {
		name:   "publish fails: dead letter",
		agents: []string{"a1"},
		steps:  []step{failPublish(), invoke(one)},
		want: dispatchRun{
			Sent: []sent{{DeadLetter: "publish failed: broker: server stopped", ID: "ev-1", Attempt: 1, Tried: []string{"a1"}}},
			Finished: []outcome{{ID: "ev-1", Function: "f", Rule: "r", Agent: "a1", Status: "error",
				Error: "publish failed: broker: server stopped", Attempts: 1}},
			Replies: []string{"ev-1"},
			Counts:  counts{DeadLetters: 1},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newDispatchHarness(tc.agents, tc.limits)
			for _, s := range tc.steps {
				s(t, h)
			}
			want := tc.want
			if want.InFlight == nil {
				want.InFlight = map[string]int{}
			}
			if diff := cmp.Diff(want, h.run()); diff != "" {
				t.Errorf("dispatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The results topic carries an agent's result as it came when its id, function, rule and
// agent agree with the invocation, else the result with the invocation's fields; the
// reply gets the same bytes.
func TestResultsTopicForwardsWhatNeedsNoChange(t *testing.T) {
	const asItCame = `{"id":"ev-1", "agent":"a1","function":"f","rule":"r","status":"ok","output":{"x": 1},"exit_code":0,"cold":true,"timings_ms":{"queue":1,"start":2,"run":3,"total":6}}`
	for _, tc := range []struct {
		name, payload, want string
	}{{
		name:    "all fields agree: forwarded",
		payload: asItCame,
		want:    asItCame,
	}, {
		name:    "no function, rule or agent: the invocation's",
		payload: `{"id":"ev-1","status":"ok","output":{"x": 1}}`,
		want:    `{"id":"ev-1","agent":"a1","function":"f","rule":"r","status":"ok","output":{"x":1},"exit_code":0,"cold":false,"timings_ms":{"queue":0,"start":0,"run":0,"total":0}}`,
	}, {
		name:    "another function: the invocation's",
		payload: `{"id":"ev-1","agent":"a1","function":"g","rule":"r","status":"error","error":"boom","exit_code":2}`,
		want:    `{"id":"ev-1","agent":"a1","function":"f","rule":"r","status":"error","error":"boom","exit_code":2,"cold":false,"timings_ms":{"queue":0,"start":0,"run":0,"total":0}}`,
	}, {
		name:    "expired actuations kept when encoded again",
		payload: `{"id":"ev-1","status":"ok","expired":[{"line":"fan","value":1,"expires_at":"2025-06-01T12:00:00Z"}]}`,
		want:    `{"id":"ev-1","agent":"a1","function":"f","rule":"r","status":"ok","exit_code":0,"cold":false,"timings_ms":{"queue":0,"start":0,"run":0,"total":0},"expired":[{"line":"fan","value":1,"expires_at":"2025-06-01T12:00:00Z"}]}`,
	}, {
		name:    "another agent named: the topic's",
		payload: `{"id":"ev-1","agent":"a2","function":"f","rule":"r","status":"ok","exit_code":0}`,
		want:    `{"id":"ev-1","agent":"a1","function":"f","rule":"r","status":"ok","exit_code":0,"cold":false,"timings_ms":{"queue":0,"start":0,"run":0,"total":0}}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newDispatchHarness([]string{"a1"}, DispatchConfig{})
			h.d.observers = append(h.d.observers, resultsTopic{publish: h.publish, topics: h.d.topics})
			var reply []byte
			h.d.invoke(testFunction, "r", protocol.Target{Pick: protocol.PickOne}, nil, nil, 0, func(f *finished) { reply = f.JSON() }, false, &h.ids, "")
			h.d.result("a1", []byte(h.real(tc.payload)), []byte(h.real("ev-1")))
			if diff := cmp.Diff([]string{"deviceless/results/f " + tc.want}, h.labels(h.results)); diff != "" {
				t.Errorf("results topic (-want +got):\n%s", diff)
			}
			if string(h.label(string(reply))) != tc.want {
				t.Errorf("reply %s, want %s", reply, tc.want)
			}
		})
	}
}

// Issue 12: an invocation carries the hop of its event; its result on the results topic
// and its dead letter go back into the rules one hop further.
func TestResultsAndDeadLettersCountHops(t *testing.T) {
	var msgs []broker.Message
	d := newDispatcher(dispatchDeps{
		publish: func(m broker.Message) error { msgs = append(msgs, m); return nil },
		agents:  &fakeAgents{online: []string{"a1"}, inFlight: map[string]int{}},
		clock:   &fakeClock{now: time.Now()},
		limits:  DispatchConfig{Attempts: 1, Backoff: time.Millisecond, StartGrace: time.Second},
		counters: dispatchCounters{attempts: fakeCounter{new(int)}, retries: fakeCounter{new(int)}, timeouts: fakeCounter{new(int)}, dropped: fakeCounter{new(int)},
			late: fakeCounter{new(int)}, foreign: fakeCounter{new(int)}, deadLetters: fakeCounter{new(int)}, malformed: fakeCounter{new(int)}},
	})
	d.observers = []resultObserver{resultsTopic{publish: d.publish, topics: d.topics}}
	hopOf := func(m broker.Message) string {
		for _, u := range m.UserProperties {
			if u.Key == hopProperty {
				return u.Value
			}
		}
		return "none"
	}
	d.invoke(testFunction, "r", protocol.Target{Pick: protocol.PickOne}, nil, nil, 3, nil, false, nil, "")
	var inv protocol.Invocation
	if err := json.Unmarshal(msgs[0].Payload, &inv); err != nil || inv.Hop != 3 {
		t.Fatalf("invocation %s: hop %d, want 3 (%v)", msgs[0].Payload, inv.Hop, err)
	}
	d.result("a1", []byte(`{"status":"ok"}`), []byte(inv.ID))
	if m := msgs[1]; m.Topic != "deviceless/results/f" || hopOf(m) != "4" {
		t.Fatalf("result on %s with hop %s, want deviceless/results/f with hop 4", m.Topic, hopOf(m))
	}
	msgs = nil
	d.invoke(testFunction, "r", protocol.Target{Agent: "nobody", Pick: protocol.PickOne}, nil, nil, 5, nil, false, nil, "")
	if len(msgs) != 2 || msgs[0].Topic != "deviceless/deadletter" || hopOf(msgs[0]) != "6" || hopOf(msgs[1]) != "6" {
		t.Fatalf("dead letter and its result: %+v, want both with hop 6", msgs)
	}
}

// The Influx point of a finished invocation has the status tag bounded as the Prometheus
// label is (issue 12).
func TestSinkObserverBoundsTheStatusTag(t *testing.T) {
	var got []metrics.Point
	o := sinkObserver{sinkFunc(func(p metrics.Point) { got = append(got, p) })}
	for _, status := range []string{protocol.StatusOK, "whatever-an-agent-says"} {
		o.observe(&finished{Record: Record{Result: protocol.Result{Function: "f", Agent: "a1", Status: status}}})
	}
	var tags []string
	for _, p := range got {
		for _, tag := range p.Tags {
			if tag.Key == "status" {
				tags = append(tags, tag.Value)
			}
		}
	}
	if diff := cmp.Diff([]string{"ok", "other"}, tags); diff != "" {
		t.Errorf("status tags (-want +got):\n%s", diff)
	}
}

type sinkFunc func(metrics.Point)

func (f sinkFunc) Write(p metrics.Point) { f(p) }

// dispatchRun is what a dispatcher did: messages it published, invocations that finished
// (as the observers saw them), replies, counters, in-flight counts and pending invocations.
type dispatchRun struct {
	Sent     []sent
	Finished []outcome
	Replies  []string // ids
	Counts   counts
	InFlight map[string]int // agents with invocations in flight
	Pending  int
}

// sent is an invocation to an agent, or a dead letter. At is the time since the start.
type sent struct {
	To         string
	DeadLetter string // the reason
	ID         string
	Attempt    int
	Tried      []string
	At         time.Duration
}

type outcome struct {
	ID, Function, Rule, Agent, Status, Error string
	Attempts                                 int
	At                                       time.Duration
}

type counts struct {
	Attempts, Retries, Timeouts, Dropped, Late, Foreign, DeadLetters, Malformed int
}

type dispatchHarness struct {
	d      *dispatcher
	clock  *fakeClock
	agents *fakeAgents
	ids    actionIDs
	start  time.Time
	fail   error // publish fails with it

	sent     []sent
	finished []outcome
	replies  []string
	counts   counts
	lastInv  map[string]string // agent: the id of the last invocation it was sent
	names    map[string]string // the ids the harness's event names its invocations: "ev-1", "ev-2", ...
	results  []string          // topic and payload on the results topic
}

func newDispatchHarness(agents []string, limits DispatchConfig) *dispatchHarness {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	h := &dispatchHarness{clock: &fakeClock{now: start}, agents: &fakeAgents{online: agents, inFlight: map[string]int{}},
		ids: actionIDs{base: "ev"}, start: start, lastInv: map[string]string{}, names: map[string]string{}}
	for i, ids := 1, (actionIDs{base: "ev"}); i <= 9; i++ {
		h.names[ids.next()] = fmt.Sprintf("ev-%d", i)
	}
	if limits.Attempts == 0 {
		limits.Attempts = 3
	}
	if limits.Backoff == 0 {
		limits.Backoff = 100 * time.Millisecond
	}
	if limits.StartGrace == 0 {
		limits.StartGrace = time.Second
	}
	c := &h.counts
	h.d = newDispatcher(dispatchDeps{
		publish: h.publish,
		agents:  h.agents,
		clock:   h.clock,
		limits:  limits,
		counters: dispatchCounters{attempts: fakeCounter{&c.Attempts}, retries: fakeCounter{&c.Retries}, timeouts: fakeCounter{&c.Timeouts}, dropped: fakeCounter{&c.Dropped},
			late: fakeCounter{&c.Late}, foreign: fakeCounter{&c.Foreign}, deadLetters: fakeCounter{&c.DeadLetters}, malformed: fakeCounter{&c.Malformed}},
		observers: []resultObserver{observerFunc(func(f *finished) {
			h.finished = append(h.finished, outcome{ID: h.label(f.ID), Function: f.Function, Rule: f.Rule, Agent: f.Agent, Status: f.Status,
				Error: f.Error, Attempts: f.Attempts, At: f.Finished.Sub(h.start)})
		})},
	})
	return h
}

func (h *dispatchHarness) publish(m broker.Message) error {
	switch {
	case strings.HasPrefix(m.Topic, "deviceless/results/"):
		h.results = append(h.results, m.Topic+" "+string(m.Payload))
	case m.Topic == h.d.topics.DeadLetter():
		var dl DeadLetter
		if err := json.Unmarshal(m.Payload, &dl); err != nil {
			panic(err)
		}
		h.sent = append(h.sent, sent{DeadLetter: dl.Reason, ID: h.label(dl.Invocation.ID), Attempt: dl.Invocation.Attempt, Tried: dl.Tried, At: dl.At.Sub(h.start)})
	case h.fail != nil:
		return h.fail
	default:
		var inv protocol.Invocation
		if err := json.Unmarshal(m.Payload, &inv); err != nil {
			panic(err)
		}
		agent := strings.TrimSuffix(strings.TrimPrefix(m.Topic, "deviceless/agents/"), "/invoke")
		if m.Topic != h.d.topics.AgentInvoke(agent) || m.ResponseTopic != h.d.topics.AgentResult(agent) ||
			string(m.CorrelationData) != inv.ID || m.QoS != 1 || m.Expiry != 2*time.Second || !inv.Deadline.Equal(h.clock.Now().Add(2*time.Second)) {
			panic("unexpected invocation message " + m.Topic + " " + string(m.Payload))
		}
		h.lastInv[agent] = inv.ID
		h.sent = append(h.sent, sent{To: agent, ID: h.label(inv.ID), Attempt: inv.Attempt, At: h.clock.Now().Sub(h.start)})
	}
	return nil
}

// label replaces the ids of the harness's invocations in s with their names ("ev-1").
func (h *dispatchHarness) label(s string) string {
	for id, name := range h.names {
		s = strings.ReplaceAll(s, id, name)
	}
	return s
}

func (h *dispatchHarness) labels(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = h.label(s)
	}
	return out
}

// real replaces the names of the harness's invocations ("ev-1") in s with their ids.
func (h *dispatchHarness) real(s string) string {
	for id, name := range h.names {
		s = strings.ReplaceAll(s, name, id)
	}
	return s
}

func (h *dispatchHarness) run() dispatchRun {
	inFlight := map[string]int{}
	for a, n := range h.agents.inFlight {
		if n != 0 {
			inFlight[a] = n
		}
	}
	return dispatchRun{Sent: h.sent, Finished: h.finished, Replies: h.replies, Counts: h.counts, InFlight: inFlight, Pending: h.d.inFlight()}
}

// step is one thing that happens to the dispatcher under test.
type step func(t *testing.T, h *dispatchHarness)

var testFunction = &rules.Function{Name: "f", Spec: protocol.FunctionSpec{Runtime: "sh", Code: "cat", Timeout: protocol.Duration(time.Second)}}

func invoke(target protocol.Target) step { return invokeArgs(target, map[string]any{"n": 1.0}) }

func invokeArgs(target protocol.Target, args map[string]any) step {
	return func(t *testing.T, h *dispatchHarness) {
		ev := &protocol.Event{Topic: "sensors/a", Payload: json.RawMessage(`{"c":1}`)}
		h.d.invoke(testFunction, "r", target, args, ev, 0, func(f *finished) { h.replies = append(h.replies, h.label(f.ID)) }, false, &h.ids, "")
	}
}

// answer has agent answer the last invocation it was sent, with status.
func answer(agent, status string) step {
	return func(t *testing.T, h *dispatchHarness) {
		id := h.lastInv[agent]
		if id == "" {
			t.Fatalf("agent %s was sent nothing to answer", agent)
		}
		res := protocol.Result{ID: id, Status: status}
		if status != protocol.StatusOK {
			res.Error = "busy"
		}
		b, _ := json.Marshal(res)
		h.d.result(agent, b, []byte(id))
	}
}

// result hands the dispatcher a result message from agent as it is.
func result(agent, payload, correlation string) step {
	return func(t *testing.T, h *dispatchHarness) {
		h.d.result(agent, []byte(h.real(payload)), []byte(h.real(correlation)))
	}
}

// dropped has the broker report that it dropped, for agent, the last invocation sent to
// of (as broker.OnDropped does when the agent's queue is full).
func dropped(agent, of string) step {
	return func(t *testing.T, h *dispatchHarness) {
		id := h.lastInv[of]
		if id == "" {
			t.Fatalf("agent %s was sent nothing", of)
		}
		h.d.dropped(agent, []byte(id))
	}
}

func advance(d time.Duration) step {
	return func(t *testing.T, h *dispatchHarness) { h.clock.Advance(d) }
}

// drain stops the dispatcher without waiting.
func drain() step {
	return func(t *testing.T, h *dispatchHarness) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h.d.drain(ctx)
	}
}

func failPublish() step {
	return func(t *testing.T, h *dispatchHarness) { h.fail = broker.ErrServerStopped }
}

type observerFunc func(*finished)

func (o observerFunc) observe(f *finished) { o(f) }

type fakeCounter struct{ n *int }

func (c fakeCounter) Inc() { *c.n++ }

// fakeAgents picks from a fixed list of online agents, the least busy first (ties: the
// first in the list).
type fakeAgents struct {
	online   []string
	inFlight map[string]int
}

func (a *fakeAgents) selectAgents(t protocol.Target, line string, exclude []string) []string {
	var ids []string
	for _, id := range a.online {
		if !slices.Contains(exclude, id) && (t.Agent == "" || t.Agent == id) {
			ids = append(ids, id)
		}
	}
	if t.Pick == protocol.PickAll || len(ids) <= 1 {
		return ids
	}
	best := ids[0]
	for _, id := range ids[1:] {
		if a.inFlight[id] < a.inFlight[best] {
			best = id
		}
	}
	return []string{best}
}

func (a *fakeAgents) addInFlight(id string, d int) { a.inFlight[id] += d }

// acquire never waits: the fake clock's cases run on one goroutine (the registry's wait
// is TestRegistryAcquireWaitsForASlot's).
func (a *fakeAgents) acquire(id string, limit int, stop <-chan struct{}) bool {
	a.inFlight[id]++
	return true
}

// fakeClock is a clock that moves only when told; Advance runs the timers that come due,
// in order, on the caller's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Time
	f   func()
	off bool // stopped or fired
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.off && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.off = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}
