package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLength is the MQTT limit on a topic name or filter, in bytes.
const MaxTopicLength = 65535

// ValidateFilter reports whether filter is a valid MQTT topic filter: '+' and '#' must
// occupy a whole level and '#' must be the last level.
func ValidateFilter(filter string) error {
	if err := validateTopicText(filter); err != nil {
		return err
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return errors.New("'#' must be the last level of a topic filter")
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return fmt.Errorf("wildcard in level %q: '+' and '#' must occupy a whole level", l)
		}
	}
	return nil
}

// ValidateTopic reports whether topic is a valid MQTT topic name (no wildcards).
func ValidateTopic(topic string) error {
	if err := validateTopicText(topic); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return errors.New("a topic name cannot contain wildcards '+' or '#'")
	}
	return nil
}

func validateTopicText(s string) error {
	switch {
	case s == "":
		return errors.New("empty topic")
	case len(s) > MaxTopicLength:
		return fmt.Errorf("topic longer than %d bytes", MaxTopicLength)
	case !utf8.ValidString(s):
		return errors.New("topic is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("topic contains a NUL character")
	}
	return nil
}

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
