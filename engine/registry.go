package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// registry is the engine's view of the edge agents, built from their retained status
// messages and last wills.
type registry struct {
	mu     sync.Mutex
	agents map[string]*agent
	rr     uint64 // round-robin tie breaker for pick: one
	// freed is closed (and replaced) when an agent's in-flight count falls or the agents
	// change: acquire's waiters look again.
	freed chan struct{}
	// onChange receives a snapshot for the rules' `agents` variable.
	onChange func([]rules.Agent)
}

type agent struct {
	status   protocol.Status
	inFlight int
	seen     time.Time
}

// AgentView is an agent as the HTTP API shows it.
type AgentView struct {
	protocol.Status
	InFlight int       `json:"in_flight"`
	LastSeen time.Time `json:"last_seen"`
}

func newRegistry(onChange func([]rules.Agent)) *registry {
	return &registry{agents: map[string]*agent{}, onChange: onChange, freed: make(chan struct{})}
}

// update applies a status message published on the agent's status topic.
func (r *registry) update(id string, payload []byte, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.wake()         // a waiter's agent may be gone or changed
	if len(payload) == 0 { // a cleared retained status: the agent is gone
		delete(r.agents, id)
		r.changed()
		return nil
	}
	var st protocol.Status
	if err := json.Unmarshal(payload, &st); err != nil {
		return fmt.Errorf("agent %s: malformed status: %w", id, err)
	}
	if st.Agent != "" && st.Agent != id {
		return fmt.Errorf("agent %s: status names agent %q", id, st.Agent)
	}
	st.Agent = id
	a := r.agents[id]
	if a == nil {
		a = &agent{}
		r.agents[id] = a
	}
	if !st.Online && a.status.Online {
		// An offline status (last will) keeps what the agent declared, for the API.
		prev := a.status
		prev.Online = false
		st = prev
	}
	a.status, a.seen = st, now
	r.changed()
	return nil
}

func (r *registry) changed() {
	if r.onChange != nil {
		r.onChange(r.snapshotLocked())
	}
}

// forRules returns the registry as the rules' `agents` variable sees it.
func (r *registry) forRules() []rules.Agent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

func (r *registry) snapshotLocked() []rules.Agent {
	out := make([]rules.Agent, 0, len(r.agents))
	for _, a := range r.agents {
		lines := make([]string, 0, len(a.status.Lines))
		for l := range a.status.Lines {
			lines = append(lines, l)
		}
		sort.Strings(lines)
		out = append(out, rules.Agent{ID: a.status.Agent, Online: a.status.Online, Labels: a.status.Labels, Lines: lines, InFlight: a.inFlight})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// selectAgents returns the online agents a target names (that admit its tenant and run its
// runtime: protocol.Status.Runs), in a
// stable order; for pick: one, the single least busy one (ties round-robin), skipping
// those in exclude.
// line, when set, keeps only agents that declare that output line.
func (r *registry) selectAgents(t protocol.Target, line string, exclude []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, a := range r.agents {
		if !a.status.Online || slices.Contains(exclude, id) {
			continue
		}
		if t.Agent != "" && id != t.Agent {
			continue
		}
		if !labelsMatch(a.status.Labels, t.Labels) || !protocol.AdmitsTenant(a.status.Labels, t.Tenant) ||
			!a.status.Runs(t.Runtime) {
			continue
		}
		if line != "" {
			if info, ok := a.status.Lines[line]; !ok || info.Direction == protocol.DirectionInput {
				continue
			}
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if t.Pick == protocol.PickAll || len(ids) <= 1 {
		return ids
	}
	least := r.agents[ids[0]].inFlight
	var best []string
	for _, id := range ids {
		switch n := r.agents[id].inFlight; {
		case n < least:
			least, best = n, []string{id}
		case n == least:
			best = append(best, id)
		}
	}
	r.rr++
	return []string{best[r.rr%uint64(len(best))]}
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (r *registry) addInFlight(id string, d int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.agents[id]; a != nil {
		a.inFlight = max(0, a.inFlight+d)
	}
	if d < 0 {
		r.wake()
	}
}

// acquire counts one more invocation out to agent id, first waiting while it has limit or
// more out (limit 0: no wait). It returns false, counting nothing, when stop closes first.
// An agent the registry does not know (gone meanwhile) is not waited for.
func (r *registry) acquire(id string, limit int, stop <-chan struct{}) bool {
	for {
		r.mu.Lock()
		a := r.agents[id]
		if a == nil || limit <= 0 || a.inFlight < limit {
			if a != nil {
				a.inFlight++
			}
			r.mu.Unlock()
			return true
		}
		freed := r.freed
		r.mu.Unlock()
		select {
		case <-freed:
		case <-stop:
			return false
		}
	}
}

// wake lets acquire's waiters look again; r.mu is held.
func (r *registry) wake() {
	close(r.freed)
	r.freed = make(chan struct{})
}

func (r *registry) list() []AgentView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AgentView, 0, len(r.agents))
	for _, a := range r.agents {
		out = append(out, AgentView{Status: a.status, InFlight: a.inFlight, LastSeen: a.seen})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Agent < out[j].Agent })
	return out
}

func (r *registry) online() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.agents {
		if a.status.Online {
			n++
		}
	}
	return n
}
