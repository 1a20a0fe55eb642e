package topic

import "strings"

// Matcher finds the values subscribed with filters matching a topic. Its cost depends on
// the topic's depth and the number of matching filters, not on how many other filters
// exist: filters are kept in a trie keyed by level.
//
// A Matcher is not safe for concurrent mutation; build it, then share it read-only.
type Matcher[T any] struct {
	root node[T]
	n    int
}

type node[T any] struct {
	children map[string]*node[T]
	plus     *node[T]
	hash     []T // values of filters ending in '#' below this node
	values   []T // values of filters ending exactly here
}

// Add subscribes v with filter. The filter must be valid (see ValidateFilter).
func (m *Matcher[T]) Add(filter string, v T) error {
	if err := ValidateFilter(filter); err != nil {
		return err
	}
	n := &m.root
	for {
		level, rest, more := strings.Cut(filter, "/")
		switch level {
		case "#":
			n.hash = append(n.hash, v)
			m.n++
			return nil
		case "+":
			if n.plus == nil {
				n.plus = &node[T]{}
			}
			n = n.plus
		default:
			c := n.children[level]
			if c == nil {
				if n.children == nil {
					n.children = make(map[string]*node[T])
				}
				c = &node[T]{}
				n.children[level] = c
			}
			n = c
		}
		if !more {
			n.values = append(n.values, v)
			m.n++
			return nil
		}
		filter = rest
	}
}

// Len is the number of filters added.
func (m *Matcher[T]) Len() int { return m.n }

// Match appends to dst the values of every filter matching topic and returns it. Topics
// starting with '$' are not matched by a leading wildcard (MQTT 4.7.2). The same value is
// appended once per matching filter. Match does not allocate when dst has room.
func (m *Matcher[T]) Match(topic string, dst []T) []T {
	if topic == "" {
		return dst
	}
	return m.root.match(topic, true, topic[0] == '$', dst)
}

func (n *node[T]) match(topic string, first, dollar bool, dst []T) []T {
	wild := !(first && dollar)
	if wild {
		// '#' matches the parent level too ("a/#" matches "a").
		dst = append(dst, n.hash...)
	}
	level, rest, more := strings.Cut(topic, "/")
	if c := n.children[level]; c != nil {
		if more {
			dst = c.match(rest, false, dollar, dst)
		} else {
			dst = append(dst, c.values...)
			dst = append(dst, c.hash...)
		}
	}
	if wild && n.plus != nil {
		if more {
			dst = n.plus.match(rest, false, dollar, dst)
		} else {
			dst = append(dst, n.plus.values...)
			dst = append(dst, n.plus.hash...)
		}
	}
	return dst
}
