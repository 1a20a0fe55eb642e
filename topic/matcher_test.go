package topic

import (
	"fmt"
	"slices"
	"testing"
)

func TestMatcher(t *testing.T) {
	filters := []string{
		"a/b/c", "a/+/c", "a/#", "#", "+/b/#", "+", "a/b", "$SYS/#", "$SYS/+/x", "+/+", "/+", "a//c", "a/+/+/d",
	}
	var m Matcher[string]
	for _, f := range filters {
		if err := m.Add(f, f); err != nil {
			t.Fatalf("Add(%q): %v", f, err)
		}
	}
	cases := []struct {
		topic string
		want  []string
	}{
		{"a/b/c", []string{"a/b/c", "a/+/c", "a/#", "#", "+/b/#"}},
		{"a/b", []string{"a/#", "#", "+/b/#", "a/b", "+/+"}},
		{"a", []string{"a/#", "#", "+"}}, // "a/#" also matches its parent level
		{"x", []string{"#", "+"}},
		{"x/b", []string{"#", "+/b/#", "+/+"}},
		{"/x", []string{"#", "/+", "+/+"}},
		{"a//c", []string{"a/#", "#", "a/+/c", "a//c"}},
		{"a/x/y/d", []string{"a/#", "#", "a/+/+/d"}},
		{"$SYS/broker", []string{"$SYS/#"}}, // no leading wildcard matches a $ topic
		{"$SYS/a/x", []string{"$SYS/#", "$SYS/+/x"}},
		{"$other", nil},
		{"", nil},
	}
	for _, c := range cases {
		got := m.Match(c.topic, nil)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %q, want %q", c.topic, got, want)
		}
	}
	if m.Add("a/#/b", "x") == nil {
		t.Error("Add accepted an invalid filter")
	}
}

// TestMatcherAgainstReference compares the trie with Match, a direct implementation of the
// MQTT matching rules, over many filter/topic pairs.
func TestMatcherAgainstReference(t *testing.T) {
	levels := []string{"a", "b", "", "$x"}
	var topics []string
	var gen func(prefix string, depth int)
	gen = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, l := range levels {
			tp := l
			if prefix != "" || depth < 3 {
				tp = prefix + "/" + l
			}
			if depth == 3 {
				tp = l
			}
			topics = append(topics, tp)
			gen(tp, depth-1)
		}
	}
	gen("", 3)
	filterLevels := []string{"a", "b", "", "+", "#", "$x"}
	var filters []string
	for _, x := range filterLevels {
		filters = append(filters, x)
		for _, y := range filterLevels {
			filters = append(filters, x+"/"+y)
			for _, z := range filterLevels {
				filters = append(filters, x+"/"+y+"/"+z)
			}
		}
	}
	var m Matcher[string]
	var valid []string
	for _, f := range filters {
		if ValidateFilter(f) == nil {
			valid = append(valid, f)
			_ = m.Add(f, f)
		}
	}
	for _, tp := range topics {
		if tp == "" {
			continue
		}
		var want []string
		for _, f := range valid {
			if Match(f, tp) {
				want = append(want, f)
			}
		}
		got := m.Match(tp, nil)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q, want %q", tp, got, want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	var m Matcher[int32]
	for i := 0; i < 1000; i++ {
		_ = m.Add(fmt.Sprintf("site/%d/+/temperature", i), int32(i))
	}
	dst := make([]int32, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		dst = m.Match("site/7/room/temperature", dst[:0])
	})
	if allocs != 0 || len(dst) != 1 {
		t.Fatalf("Match: %v allocs, %d results; want 0 allocs, 1 result", allocs, len(dst))
	}
}
