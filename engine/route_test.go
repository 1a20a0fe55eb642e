package engine

import (
	"strings"
	"testing"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

func TestForRules(t *testing.T) {
	for _, prefix := range []string{"", "acme/dl"} {
		topics, err := protocol.NewTopics(prefix)
		if err != nil {
			t.Fatal(err)
		}
		e := &Engine{topics: topics}
		for _, c := range []struct {
			topic string
			want  bool
		}{
			{"greenhouse/gh1/temperature", true},
			{topics.Results("cool-down"), true}, // rules may react to results and dead letters
			{topics.DeadLetter(), true},
			{topics.AgentStatus("a"), false},
			{topics.AgentResult("a"), false},
			{topics.AgentInvoke("a"), false},
			{topics.AgentActuate("a"), false},
			{topics.Invoke("cool-down"), false},
			{topics.Prefix, false},
			{topics.Prefix + "/other", false},
			{topics.Prefix + "x/y", true}, // outside the prefix
		} {
			if got := e.forRules(&broker.Event{Topic: c.topic}); got != c.want {
				t.Errorf("prefix %q: forRules(%q) = %v, want %v", prefix, c.topic, got, c.want)
			}
		}
		loop := &broker.Event{Topic: "x", UserProperties: []broker.UserProperty{{Key: hopProperty, Value: "8"}}}
		if e.forRules(loop) {
			t.Errorf("forRules took an event after %d hops", maxHops)
		}
		// Issue 12: a hop count below 0 (or not a number) counts 0, never less.
		for _, v := range []string{"-100000", "x", ""} {
			ev := &broker.Event{Topic: "x", UserProperties: []broker.UserProperty{{Key: hopProperty, Value: v}}}
			if hops(ev) != 0 {
				t.Errorf("hop %q counts %d, want 0", v, hops(ev))
			}
		}
	}
}

func TestNewRefusesABadPrefix(t *testing.T) {
	for _, external := range []string{"", "mqtt://127.0.0.1:1"} {
		cfg := Config{HTTP: "off"}
		cfg.Broker.Prefix = "dl//x"
		cfg.Broker.External = external
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("external %q: New with prefix %q: %v, want a prefix error", external, cfg.Broker.Prefix, err)
		}
	}
}

// The engine takes the same broker URLs as the agent (protocol.ParseBrokerURL).
func TestNewExternalBrokerURL(t *testing.T) {
	for _, c := range []struct {
		url, want string // want: the URL dialled, or "" for an error
	}{
		{"mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"}, {"tcp://127.0.0.1:1883", "mqtt://127.0.0.1:1883"},
		{"ssl://broker.example:8883", "mqtts://broker.example:8883"}, {"tls://broker.example:8883", "mqtts://broker.example:8883"},
		{"wss://broker.example/mqtt", "wss://broker.example/mqtt"},
		{"http://broker.example", ""}, {"mqtt://", ""}, {"broker.example:1883", ""},
	} {
		cfg := Config{HTTP: "off"}
		cfg.Broker.External = c.url
		e, err := New(cfg, nil)
		switch {
		case c.want == "" && (err == nil || !strings.Contains(err.Error(), "broker.external")):
			t.Errorf("New with broker.external %q: %v, want a broker.external error", c.url, err)
		case c.want != "" && err != nil:
			t.Errorf("New with broker.external %q: %v", c.url, err)
		case c.want != "" && e.t.(*external).url.String() != c.want:
			t.Errorf("broker.external %q dials %s, want %s", c.url, e.t.(*external).url, c.want)
		}
	}
}

// With an external broker an API token's name names its response space, a topic level.
func TestExternalTokenNamesAreTopicLevels(t *testing.T) {
	for _, name := range []string{"a/b", "a+", "#"} {
		cfg := Config{HTTP: "off"}
		cfg.Broker.External = "mqtt://127.0.0.1:1"
		cfg.API.Tokens = []APIToken{{Name: name, Hash: HashAPIToken("x"), Role: "client"}}
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "api.tokens[0]") {
			t.Errorf("token name %q: New: %v, want an api.tokens[0] error", name, err)
		}
	}
}
