package engine

import (
	"encoding/json"
	"sync"

	"github.com/deviceless/deviceless/protocol"
)

// undelivered notes the actuations the embedded broker dropped within their own publish
// (broker.OnDropped: the agent's queue, limits.max_queued, was full), so that
// Engine.actuate returns an error for them and the action is dead-lettered with its rule
// and event (actionFailed) instead of being lost. Only ids being published are noted.
type undelivered struct {
	mu  sync.Mutex
	ids map[string]bool // id being published → dropped
}

// watch starts noting drops of actuation id; take ends it and says whether it was dropped.
func (u *undelivered) watch(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ids == nil {
		u.ids = map[string]bool{}
	}
	u.ids[id] = false
}

func (u *undelivered) take(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	dropped := u.ids[id]
	delete(u.ids, id)
	return dropped
}

// dropped is told of an actuation message the broker dropped.
func (u *undelivered) dropped(payload []byte) {
	var act protocol.Actuation
	if json.Unmarshal(payload, &act) != nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.ids[act.ID]; ok {
		u.ids[act.ID] = true
	}
}
