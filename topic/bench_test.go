package topic

import "testing"

var sink bool

// BenchmarkMatch is one filter against one topic, as the broker's intake checks its
// filters and exclusions (the engine's event intake excludes agent and invoke traffic).
func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct{ filter, topic string }{
		{"deviceless/agents/+/#", "greenhouse/gh1/temperature"},
		{"deviceless/agents/+/#", "deviceless/agents/gh1-edge/result"},
		{"site/+/room/temperature", "site/7/room/temperature"},
	} {
		b.Run(c.topic, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = Match(c.filter, c.topic)
			}
		})
	}
}
