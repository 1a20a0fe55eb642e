package protocol

import (
	"strings"
	"testing"
)

func TestNewTopics(t *testing.T) {
	for _, c := range []struct {
		prefix, want string // want: the prefix, or "" for an error
	}{
		{"", DefaultPrefix}, {"deviceless", "deviceless"}, {"acme/dl", "acme/dl"}, {"a-b_c.d", "a-b_c.d"},
		{"dl/", ""}, {"/dl", ""}, {"acme//dl", ""}, {"/", ""}, {"dl/+", ""}, {"dl/#", ""}, {"+", ""},
		{"d#l", ""}, {"$SYS", ""}, {"$dl/x", ""}, {"dl\x00", ""}, {string([]byte{0xff}), ""},
		{strings.Repeat("a", 65536), ""},
	} {
		got, err := NewTopics(c.prefix)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("NewTopics(%q) = %q, want an error", c.prefix, got.Prefix)
		case c.want != "" && err != nil:
			t.Errorf("NewTopics(%q): %v", c.prefix, err)
		case c.want != "" && got.Prefix != c.want:
			t.Errorf("NewTopics(%q).Prefix = %q, want %q", c.prefix, got.Prefix, c.want)
		}
		if (ValidatePrefix(c.prefix) == nil) != (c.want != "" && c.prefix != "") {
			t.Errorf("ValidatePrefix(%q) disagrees with NewTopics", c.prefix)
		}
	}
}

var testDigest = ModuleDigest([]byte("\x00asm\x01\x00\x00\x00"))

func TestTopicsParse(t *testing.T) {
	dl := Topics{}
	acme, err := NewTopics("acme/dl")
	if err != nil {
		t.Fatal(err)
	}
	const outside = Kind(255) // ok == false
	for _, c := range []struct {
		t     Topics
		topic string
		want  Route
	}{
		// Every builder parses back.
		{dl, dl.AgentStatus("gh1-edge"), Route{Kind: AgentStatus, Agent: "gh1-edge"}},
		{dl, dl.AgentInvoke("gh1-edge"), Route{Kind: AgentInvoke, Agent: "gh1-edge"}},
		{dl, dl.AgentResult("gh1-edge"), Route{Kind: AgentResult, Agent: "gh1-edge"}},
		{dl, dl.AgentActuate("gh1-edge"), Route{Kind: AgentActuate, Agent: "gh1-edge"}},
		{dl, dl.AgentModules("gh1-edge"), Route{Kind: AgentModules, Agent: "gh1-edge"}},
		{dl, dl.Module(testDigest), Route{Kind: Module, Digest: testDigest}},
		{dl, dl.Invoke("cool-down"), Route{Kind: Invoke, Function: "cool-down"}},
		{dl, dl.Results("cool-down"), Route{Kind: Results, Function: "cool-down"}},
		{dl, dl.DeadLetter(), Route{Kind: DeadLetter}},
		{dl, dl.Responses("nodered"), Route{Kind: Response, User: "nodered"}},
		{acme, acme.Responses("nodered"), Route{Kind: Response, User: "nodered"}},
		{acme, acme.AgentStatus("a"), Route{Kind: AgentStatus, Agent: "a"}},
		{acme, acme.Results("f"), Route{Kind: Results, Function: "f"}},
		{acme, acme.DeadLetter(), Route{Kind: DeadLetter}},
		{dl, dl.EngineSync("engine-A"), Route{Kind: EngineSync, Agent: "engine-A"}},
		{dl, "deviceless/engines/engine-A/sync/x", Route{}},
		{dl, "deviceless/engines/+/sync", Route{}},
		{dl, "deviceless/engines/engine-A/other", Route{}},
		{dl, "deviceless/agents/a.b/result", Route{Kind: AgentResult, Agent: "a.b"}},
		{dl, "deviceless/agents/$x/status", Route{Kind: AgentStatus, Agent: "$x"}},
		// A requester's response space: any name below its own level.
		{dl, "deviceless/responses/nodered/fan-speed", Route{Kind: Response, User: "nodered"}},
		{dl, "deviceless/responses/nodered/a/b/c", Route{Kind: Response, User: "nodered"}},
		{dl, "deviceless/responses/nodered/", Route{Kind: Response, User: "nodered"}},

		// Outside the prefix.
		{dl, "greenhouse/gh1/temperature", Route{Kind: outside}},
		{dl, "devicelessX/agents/a/status", Route{Kind: outside}},
		{dl, "devicelessagents/a/status", Route{Kind: outside}},
		{dl, "deviceles", Route{Kind: outside}},
		{dl, "", Route{Kind: outside}},
		{dl, "/deviceless/deadletter", Route{Kind: outside}},
		{dl, "Deviceless/deadletter", Route{Kind: outside}},
		{dl, "$SYS/broker/uptime", Route{Kind: outside}},
		{acme, "deviceless/agents/a/status", Route{Kind: outside}},
		{acme, "acme/agents/a/status", Route{Kind: outside}},
		{acme, "acme/dlx/deadletter", Route{Kind: outside}},

		// Inside the prefix but no topic of the layout.
		{dl, "deviceless", Route{}},
		{dl, "deviceless/", Route{}},
		{acme, "acme/dl", Route{}},
		{dl, "deviceless/agents", Route{}},
		{dl, "deviceless/agents/", Route{}},
		{dl, "deviceless/agents/a", Route{}},
		{dl, "deviceless/agents/a/", Route{}},
		{dl, "deviceless/agents//status", Route{}},
		{dl, "deviceless/agents/a/status/", Route{}},
		{dl, "deviceless/agents/a/status/x", Route{}},
		{dl, "deviceless/agents/a/b/status", Route{}},
		{dl, "deviceless/agents/a/other", Route{}},
		{dl, "deviceless/agents/a/Status", Route{}},
		{dl, "deviceless/agents/+/status", Route{}},
		{dl, "deviceless/agents/#", Route{}},
		{dl, "deviceless/agents/a+/status", Route{}},
		{dl, "deviceless/agents/a/#", Route{}},
		{dl, "deviceless/invoke", Route{}},
		{dl, "deviceless/invoke/", Route{}},
		{dl, "deviceless/invoke/f/x", Route{}},
		{dl, "deviceless/invoke/+", Route{}},
		{dl, "deviceless/invoke/#", Route{}},
		{dl, "deviceless/results", Route{}},
		{dl, "deviceless/results/", Route{}},
		{dl, "deviceless/results/f/x", Route{}},
		{dl, "deviceless/results/+", Route{}},
		{dl, "deviceless/modules", Route{}},
		{dl, "deviceless/modules/", Route{}},
		{dl, "deviceless/modules/+", Route{}},
		{dl, "deviceless/modules/fn.wasm", Route{}},
		{dl, "deviceless/modules/" + strings.ToUpper(testDigest), Route{}},
		{dl, "deviceless/modules/" + testDigest + "/x", Route{}},
		{dl, "deviceless/responses", Route{}},
		{dl, "deviceless/responses/", Route{}},
		{dl, "deviceless/responses//x", Route{}},
		{dl, "deviceless/responses/+/x", Route{}},
		{dl, "deviceless/responses/#", Route{}},
		{dl, "deviceless/responses/nodered/#", Route{}},
		{dl, "deviceless/responses/nodered/+/x", Route{}},
		{dl, "deviceless/deadletter/", Route{}},
		{dl, "deviceless/deadletter/x", Route{}},
		{dl, "deviceless//deadletter", Route{}},
		{dl, "deviceless/other/x", Route{}},
		{dl, "deviceless/#", Route{}},
		{acme, "acme/dl/dl/deadletter", Route{}},
	} {
		got, ok := c.t.Parse(c.topic)
		want, wantOK := c.want, c.want.Kind != outside
		if !wantOK {
			want = Route{}
		}
		if got != want || ok != wantOK {
			t.Errorf("Topics{%q}.Parse(%q) = %+v, %v; want %+v, %v", c.t.Prefix, c.topic, got, ok, want, wantOK)
		}
		if ok != c.t.Internal(c.topic) {
			t.Errorf("Parse(%q): ok = %v, but Internal = %v", c.topic, ok, !ok)
		}
	}
}

// The response space's filters: what a requester may read, and every requester's.
func TestResponseFilters(t *testing.T) {
	acme := Topics{Prefix: "acme/dl"}
	if got := acme.ResponsesTree("nodered"); got != "acme/dl/responses/nodered/#" {
		t.Errorf("ResponsesTree = %q", got)
	}
	if got := acme.AllResponses(); got != "acme/dl/responses/#" {
		t.Errorf("AllResponses = %q", got)
	}
}

func TestTopicsParseDoesNotAllocate(t *testing.T) {
	tp := Topics{}
	names := []string{"greenhouse/gh1/temperature", "deviceless/agents/gh1-edge/result", "deviceless/results/f", "deviceless/responses/u/x/y", "deviceless/x"}
	allocs := testing.AllocsPerRun(100, func() {
		for _, n := range names {
			_, _ = tp.Parse(n)
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse: %v allocs, want 0", allocs)
	}
}

func TestKindString(t *testing.T) {
	if AgentStatus.String() != "agent status" || DeadLetter.String() != "dead letter" || Kind(99).String() != "kind(99)" {
		t.Errorf("Kind.String: %q %q %q", AgentStatus, DeadLetter, Kind(99))
	}
}
