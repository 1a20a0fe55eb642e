package topic

import (
	"strings"
	"testing"
)

func TestValidateFilter(t *testing.T) {
	valid := []string{"a", "a/b", "+", "#", "a/+", "a/#", "+/+/#", "/", "a//b", "$SYS/#", "+/a/+"}
	invalid := []string{"", "a/#/b", "#/a", "a+/b", "a/b+", "a/#b", "a/+b/c", "a\x00b", string([]byte{0xff}), strings.Repeat("a", MaxLength+1)}
	for _, f := range valid {
		if err := ValidateFilter(f); err != nil {
			t.Errorf("ValidateFilter(%q) = %v, want nil", f, err)
		}
	}
	for _, f := range invalid {
		if err := ValidateFilter(f); err == nil {
			t.Errorf("ValidateFilter(%q) = nil, want an error", f)
		}
	}
	if ValidateTopic("a/+") == nil || ValidateTopic("a/#") == nil || ValidateTopic("a/b") != nil {
		t.Error("ValidateTopic must reject wildcards and accept plain topics")
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"#", "a", true}, {"#", "a/b/c", true}, {"a/#", "a", true}, {"a/#", "a/b", true},
		{"a/#", "b/a", false}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"a/+", "a", false},
		{"+/+", "a/b", true}, {"+", "a/b", false}, {"a/b", "a/b", true}, {"a/b", "a/bc", false},
		{"a/+/c", "a//c", true}, {"deviceless/agents/#", "deviceless/agents/x/status", true},
		{"deviceless/agents/#", "deviceless/results/x", false}, {"a/b/c", "a/b", false},
		{"a/b/#", "a", false}, {"+/+", "/", true}, {"/+", "/", true}, {"+", "", true},
		// '$' topics: no leading wildcard matches them.
		{"#", "$SYS/uptime", false}, {"+/uptime", "$SYS/uptime", false}, {"$SYS/#", "$SYS/uptime", true},
		{"$SYS/#", "$SYS", true}, {"$SYS/+", "$SYS/uptime", true}, {"a/+", "a/$x", true}, {"a/#", "a/$x", true},
	} {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestIntersects(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"deviceless/agents/a/#", "deviceless/agents/+/invoke", true},
		{"deviceless/agents/a/#", "deviceless/agents/b/#", false},
		{"deviceless/agents/a/#", "deviceless/#", true},
		{"deviceless/agents/a/#", "#", true},
		{"deviceless/agents/a/#", "deviceless/agents/a", true}, // "x/#" matches "x"
		{"deviceless/agents/a/#", "deviceless/agents", false},
		{"deviceless/results/#", "deviceless/+/x", true},
		{"deviceless/results/#", "+/invoke/#", false},
		{"a/+", "a", false}, {"a/+", "+/b/c", false}, {"a/+/c", "+/b/+", true}, {"+", "+", true},
		{"#", "$SYS/#", false}, {"+/x", "$SYS/x", false}, {"$SYS/+", "$SYS/#", true}, {"#", "#", true},
		{"a/b", "a/b", true}, {"a/b", "a/c", false}, {"a/+", "a/b", true}, {"a/#", "a", true},
		{"a/b/c", "a/#", true}, {"a/b", "a/b/c", false}, {"+/+", "a/b/c", false}, {"#", "x", true},
		{"+", "/#", false}, // they share only "", which is no topic
	} {
		if got := Intersects(c.a, c.b); got != c.want {
			t.Errorf("Intersects(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := Intersects(c.b, c.a); got != c.want {
			t.Errorf("Intersects(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

// TestIntersectsAgainstMatch checks Intersects against its definition: two filters
// intersect when some topic matches both. The topics tried are every name of up to four
// levels drawn from the filters' literals and one other level, which holds a witness for
// every pair of filters of up to three levels that intersects.
func TestIntersectsAgainstMatch(t *testing.T) {
	join := func(levels []string, depth int) []string {
		out := append([]string(nil), levels...)
		last := out
		for d := 1; d < depth; d++ {
			var next []string
			for _, p := range last {
				for _, l := range levels {
					next = append(next, p+"/"+l)
				}
			}
			out, last = append(out, next...), next
		}
		return out
	}
	var filters []string
	for _, f := range join([]string{"a", "", "+", "#", "$x"}, 3) {
		if ValidateFilter(f) == nil {
			filters = append(filters, f)
		}
	}
	var topics []string
	for _, tp := range join([]string{"a", "", "$x", "c"}, 4) {
		if ValidateTopic(tp) == nil {
			topics = append(topics, tp)
		}
	}
	for i, a := range filters {
		for _, b := range filters[i:] {
			want := false
			for _, tp := range topics {
				if Match(a, tp) && Match(b, tp) {
					want = true
					break
				}
			}
			if got := Intersects(a, b); got != want {
				t.Fatalf("Intersects(%q, %q) = %v, want %v", a, b, got, want)
			}
			if Intersects(b, a) != want {
				t.Fatalf("Intersects(%q, %q) is not symmetric", b, a)
			}
		}
	}
}
