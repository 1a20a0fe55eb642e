package topic

import (
	"strings"
	"testing"
)

// FuzzTopicFilter checks the trie against Match (the reference matcher), Match against
// Intersects on a topic name, and the validator.
func FuzzTopicFilter(f *testing.F) {
	for _, s := range [][2]string{
		{"a/+/c", "a/b/c"}, {"#", "$SYS/x"}, {"a/#", "a"}, {"+/+", "/"}, {"a/#/b", "a/x/b"},
		{"a+/b", "a+/b"}, {"$SYS/#", "$SYS"}, {"", "a"}, {"+", ""}, {"a//+", "a//b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		var m Matcher[int]
		err := m.Add(filter, 1)
		if (err == nil) != (ValidateFilter(filter) == nil) {
			t.Fatalf("Add and ValidateFilter disagree on %q", filter)
		}
		if err != nil {
			if !strings.ContainsAny(filter, "+#") && filter != "" && len(filter) <= MaxLength && ValidateTopic(filter) == nil {
				t.Fatalf("filter %q without wildcards rejected: %v", filter, err)
			}
			return
		}
		if ValidateTopic(topic) != nil {
			return
		}
		got := len(m.Match(topic, nil)) == 1
		if want := Match(filter, topic); got != want {
			t.Fatalf("Matcher.Match(%q, %q) = %v, Match = %v", filter, topic, got, want)
		}
		if Intersects(filter, topic) != got {
			t.Fatalf("Intersects(%q, %q) = %v, want %v (a topic name intersects the filters matching it)", filter, topic, !got, got)
		}
	})
}
