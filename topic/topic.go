// Package topic owns MQTT topic names and topic filters: validation, matching (one filter
// against one topic, or a trie of many filters), and whether two filters overlap. The
// rules, the broker's intake and its ACLs all use it; it imports nothing of ours.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLength is the MQTT limit on a topic name or filter, in bytes.
const MaxLength = 65535

// ValidateFilter reports whether filter is a valid MQTT topic filter: '+' and '#' must
// occupy a whole level and '#' must be the last level.
func ValidateFilter(filter string) error {
	if err := validateText(filter); err != nil {
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

// ValidateTopic reports whether name is a valid MQTT topic name (no wildcards).
func ValidateTopic(name string) error {
	if err := validateText(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return errors.New("a topic name cannot contain wildcards '+' or '#'")
	}
	return nil
}

func validateText(s string) error {
	switch {
	case s == "":
		return errors.New("empty topic")
	case len(s) > MaxLength:
		return fmt.Errorf("topic longer than %d bytes", MaxLength)
	case !utf8.ValidString(s):
		return errors.New("topic is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("topic contains a NUL character")
	}
	return nil
}

// Match reports whether the topic name matches the filter; both are taken to be valid.
// '#' also matches its parent level ("a/#" matches "a"), and a topic starting with '$'
// is not matched by a filter starting with a wildcard (MQTT 4.7.2: "#" does not match
// "$SYS/uptime"). Match does not allocate.
func Match(filter, name string) bool {
	if name != "" && name[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fi := strings.IndexByte(filter, '/')
		fl := filter
		if fi >= 0 {
			fl = filter[:fi]
		}
		if fl == "#" {
			return true
		}
		ti := strings.IndexByte(name, '/')
		tl := name
		if ti >= 0 {
			tl = name[:ti]
		}
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case fi < 0 && ti < 0:
			return true
		case fi < 0:
			return false
		case ti < 0:
			return filter[fi+1:] == "#" // "a/#" matches "a"
		}
		filter, name = filter[fi+1:], name[ti+1:]
	}
}

// Intersects reports whether some topic name matches both filters a and b (a topic name
// is a filter without wildcards, so Intersects(f, name) is Match(f, name)). It is what an
// ACL asks of a subscription: can this filter deliver anything from that zone? Both are
// taken to be valid. Match's '$' rule applies: "#" and "$SYS/#" have no topic in common.
func Intersects(a, b string) bool {
	if dollarVersusWildcard(a, b) || dollarVersusWildcard(b, a) {
		return false
	}
	for first := true; ; first = false {
		al, arest, amore := cut(a)
		bl, brest, bmore := cut(b)
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		// One filter ends where the other goes on with "/#", which matches its parent
		// level too ("x/#" matches "x"): the topic ends here, and cannot be empty ("+"
		// and "/#" share only "").
		empty := first && (al == "" || bl == "")
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			return brest == "#" && !empty
		case !bmore:
			return arest == "#" && !empty
		}
		a, b = arest, brest
	}
}

// dollarVersusWildcard reports whether every topic f matches starts with '$' (its first
// level is a literal starting with '$') while w starts with a wildcard, which such a
// topic never matches.
func dollarVersusWildcard(f, w string) bool {
	return f != "" && f[0] == '$' && w != "" && (w[0] == '+' || w[0] == '#')
}

// cut splits the first level off a topic or filter: strings.Cut(s, "/") without its call
// to strings.Index.
func cut(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
