package rules

import "math"

// Member access into a payload left undecoded.
//
// `if: payload.temp > 30` reads one member, yet decodePayload builds the whole document:
// a map, a box per number, interned keys (6 % of the engine's CPU at a paced 10k events/s
// on `{"temp":31,"seq":12345}`). When every rule matching an event reads `payload` only as
// $fetch(payload, "name") — what the fetch patch makes of `payload.name` — the event's
// `payload` is a *lazyPayload instead (Evaluator.begin; the compiler's usePayloadWhole
// says which rules read it otherwise), and fetchMember asks it for the member. Its first
// fetch scans the bytes once: the whole document, with the fast decoder's acceptance
// (jsonDecoder.skip), indexing the top-level members; each member is then decoded from
// its own bytes when first fetched, and kept for the event. Whatever the scan is not sure
// of (not an object, escapes, non-ASCII, a number out of range, deep nesting, invalid
// JSON: all that the fast decoder leaves to encoding/json) and a document of more members
// than the index holds are decoded in full, with decodePayload, once. So a fetch gives
// what fetchMember gives on the decoded payload, errors included (FuzzLazyFetch), and the
// worst case is one scan more than the full decode.
//
// A lazyPayload holds the event's bytes, which the intake recycles after the batch: it is
// the Evaluator's or the Staged's, released when the event is done, and only the values
// it decodes (fresh ones, no byte of the event in them) leave an evaluation.
type lazyPayload struct {
	b     []byte
	keys  map[string]string // the evaluator's interned keys (json.go)
	state lazyState
	full  any // lazyFull: decodePayload(b)
	// over: the document has more members than m holds; m then has only the last
	// member named only (the first fetch's name), if any.
	over bool
	only string
	n    int
	m    [lazyMembers]lazyMember
}

// lazyMembers bounds the index: a device's payload has a few members.
const lazyMembers = 16

type lazyState uint8

const (
	lazyNew     lazyState = iota // not scanned
	lazyIndexed                  // scanned: m[:n] are the top-level members in order
	lazyFull                     // decoded in full: full
)

// lazyMember is a top-level member: its key is b[k0:k1], its value starts at v.
type lazyMember struct {
	k0, k1, v int32
	done      bool // val is decoded
	val       any
}

// reset makes p the lazy payload of b, dropping the last event's.
func (p *lazyPayload) reset(b []byte, keys map[string]string) {
	clear(p.m[:p.n]) // the rest holds no value: not the whole array per event
	p.b, p.keys, p.state, p.full, p.over, p.only, p.n = b, keys, lazyNew, nil, false, "", 0
}

// copyOf makes p a copy of q, interning with keys: Apply's worker takes the staged
// event's scan and decoded members, and fetches into its own copy (q may be read by
// other workers at once).
func (p *lazyPayload) copyOf(q *lazyPayload, keys map[string]string) {
	p.reset(q.b, keys)
	p.state, p.full, p.over, p.only, p.n = q.state, q.full, q.over, q.only, q.n
	copy(p.m[:q.n], q.m[:q.n])
}

// fetch is fetchMember(decodePayload(b), name).
func (p *lazyPayload) fetch(name any) any {
	s, ok := name.(string)
	if p.state == lazyNew {
		if ok && len(p.b) <= math.MaxInt32 && p.scan(s) {
			p.state = lazyIndexed
		} else {
			p.decode()
		}
	}
	if p.state == lazyFull || !ok || p.over && s != p.only {
		p.decode()
		return fetchMember(p.full, name)
	}
	for i := p.n - 1; i >= 0; i-- { // from the last: a repeated key's last value, as encoding/json
		m := &p.m[i]
		if string(p.b[m.k0:m.k1]) != s {
			continue
		}
		if !m.done {
			// At the depth of a member in the full decode, so the same acceptance.
			d := jsonDecoder{b: p.b, i: int(m.v), keys: p.keys}
			v, ok := d.value(1)
			if !ok { // the scan accepted it: not expected, but the full decode is right
				p.decode()
				return fetchMember(p.full, name)
			}
			m.val, m.done = v, true
		}
		return m.val
	}
	return nil // no such member: the map's nil
}

// decode decodes the payload in full, once.
func (p *lazyPayload) decode() {
	if p.state != lazyFull {
		p.full, p.state = decodePayload(p.b, p.keys), lazyFull
	}
}

// scan checks that b is an object the fast decoder decodes and indexes its members,
// name being the one fetched first.
func (p *lazyPayload) scan(name string) bool {
	d := jsonDecoder{b: p.b}
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return false // not an object (or not JSON): decodePayload and fetchMember say what
	}
	if !d.skipObject(0, p, name) {
		return false
	}
	d.space()
	return d.i == len(d.b)
}

// add indexes a member the scan read. Past lazyMembers it keeps only the last member
// named name: the others are fetched from the full decode.
func (p *lazyPayload) add(k0, k1, v int32, name string) {
	if !p.over {
		if p.n < len(p.m) {
			p.m[p.n] = lazyMember{k0: k0, k1: k1, v: v}
			p.n++
			return
		}
		p.over, p.only = true, name
		last := -1
		for i := range p.n {
			if string(p.b[p.m[i].k0:p.m[i].k1]) == name {
				last = i
			}
		}
		p.n = 0
		if last >= 0 {
			p.m[0], p.n = p.m[last], 1
		}
	}
	if string(p.b[k0:k1]) == name {
		p.m[0], p.n = lazyMember{k0: k0, k1: k1, v: v}, 1
	}
}
