package protocol

import (
	"errors"
	"strconv"
	"strings"

	"github.com/deviceless/deviceless/topic"
)

// DefaultPrefix is the topic prefix of every Deviceless topic unless configured otherwise.
const DefaultPrefix = "deviceless"

// Topics is the topic layout under a prefix (docs/design.md, "Topics"): it builds the
// names and filters of the Deviceless topics, and Parse tells them apart. NewTopics
// validates the prefix; the zero value uses DefaultPrefix.
type Topics struct {
	Prefix string
}

// NewTopics returns the layout under prefix; "" means DefaultPrefix. The prefix must
// pass ValidatePrefix.
func NewTopics(prefix string) (Topics, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := ValidatePrefix(prefix); err != nil {
		return Topics{}, err
	}
	return Topics{Prefix: prefix}, nil
}

// ValidatePrefix reports whether prefix can be the topic prefix: a valid topic name of one
// or more non-empty levels (no leading, trailing or double '/'), without wildcards, not
// starting with '$' (the broker's own topics).
func ValidatePrefix(prefix string) error {
	if err := topic.ValidateTopic(prefix); err != nil {
		return err
	}
	if prefix[0] == '$' {
		return errors.New("must not start with '$'")
	}
	for l := range strings.SplitSeq(prefix, "/") {
		if l == "" {
			return errors.New("empty topic level (a leading, trailing or double '/')")
		}
	}
	return nil
}

func (t Topics) p() string {
	if t.Prefix == "" {
		return DefaultPrefix
	}
	return t.Prefix
}

// AgentStatus is the retained status topic of an agent; its last will marks it offline.
func (t Topics) AgentStatus(agent string) string { return t.p() + "/agents/" + agent + "/status" }

// AgentInvoke carries invocation requests from the engine to one agent.
func (t Topics) AgentInvoke(agent string) string { return t.p() + "/agents/" + agent + "/invoke" }

// AgentResult carries invocation results from an agent to the engine.
func (t Topics) AgentResult(agent string) string { return t.p() + "/agents/" + agent + "/result" }

// AgentActuate carries direct actuations from the engine to one agent.
func (t Topics) AgentActuate(agent string) string { return t.p() + "/agents/" + agent + "/actuate" }

// AgentModules is where the engine sends an agent the module chunks it asked for (the
// response topic of its module requests).
func (t Topics) AgentModules(agent string) string { return t.p() + "/agents/" + agent + "/modules" }

// Module is the request topic of a module by digest (sha256:<hex>): agents publish there
// (MQTT v5 request, response topic AgentModules) to fetch a module they lack.
func (t Topics) Module(digest string) string { return t.p() + "/modules/" + digest }

// AllModules is the filter matching every module request.
func (t Topics) AllModules() string { return t.p() + "/modules/+" }

// AgentAll is the filter matching every topic of one agent.
func (t Topics) AgentAll(agent string) string { return t.p() + "/agents/" + agent + "/#" }

// AllStatus is the filter matching every agent's status.
func (t Topics) AllStatus() string { return t.p() + "/agents/+/status" }

// AllResults is the filter matching every agent's result topic.
func (t Topics) AllResults() string { return t.p() + "/agents/+/result" }

// AllActuate is the filter matching every agent's actuate topic.
func (t Topics) AllActuate() string { return t.p() + "/agents/+/actuate" }

// Invoke is the request topic external clients use to invoke a function through the engine.
func (t Topics) Invoke(function string) string { return t.p() + "/invoke/" + function }

// AllInvoke is the filter matching every external invoke request.
func (t Topics) AllInvoke() string { return t.p() + "/invoke/+" }

// InvokeTree is the filter matching everything under {prefix}/invoke: what the client
// role may publish.
func (t Topics) InvokeTree() string { return t.p() + "/invoke/#" }

// Results is where the engine republishes every finished invocation of a function.
func (t Topics) Results(function string) string { return t.p() + "/results/" + function }

// ResultsTree is the filter matching everything under {prefix}/results (every function's
// results): what the client role may read.
func (t Topics) ResultsTree() string { return t.p() + "/results/#" }

// Responses is the response space of one requester (an MQTT username, or an API token's
// name with an external broker): the engine answers invoke requests only on this topic or
// below it (Responses(user) + "/..."), and only user (and admins) may read it.
func (t Topics) Responses(user string) string { return t.p() + "/responses/" + user }

// ResponsesTree is the filter matching user's response space: what that user may read.
func (t Topics) ResponsesTree(user string) string { return t.p() + "/responses/" + user + "/#" }

// AllResponses is the filter matching every requester's response space.
func (t Topics) AllResponses() string { return t.p() + "/responses/#" }

// DeadLetter receives invocations that could not be delivered or exhausted their retries,
// and rule actions that could not be carried out.
func (t Topics) DeadLetter() string { return t.p() + "/deadletter" }

// EngineSync is an engine's own topic on an external broker: the engine publishes a nonce
// there after subscribing and evaluates no event before it comes back, which tells it
// that the agents' retained statuses sent before it have arrived. engine is its client id.
func (t Topics) EngineSync(engine string) string { return t.p() + "/engines/" + engine + "/sync" }

// Internal reports whether name lies inside the prefix.
func (t Topics) Internal(name string) bool {
	p := t.p()
	return strings.HasPrefix(name, p) && (len(name) == len(p) || name[len(p)] == '/')
}

// Kind tells the Deviceless topics apart.
type Kind uint8

// The kinds of topic inside the prefix.
const (
	Unknown      Kind = iota // inside the prefix, but not a topic of the layout
	AgentStatus              // {prefix}/agents/{agent}/status
	AgentInvoke              // {prefix}/agents/{agent}/invoke
	AgentResult              // {prefix}/agents/{agent}/result
	AgentActuate             // {prefix}/agents/{agent}/actuate
	Invoke                   // {prefix}/invoke/{function}
	Results                  // {prefix}/results/{function}
	DeadLetter               // {prefix}/deadletter
	Response                 // {prefix}/responses/{user}, and any name below it
	AgentModules             // {prefix}/agents/{agent}/modules
	Module                   // {prefix}/modules/{digest}
	EngineSync               // {prefix}/engines/{engine}/sync
)

var kindNames = [...]string{"unknown", "agent status", "agent invoke", "agent result", "agent actuate", "invoke", "results", "dead letter", "response", "agent modules", "module", "engine sync"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Route is what a topic inside the prefix is for.
type Route struct {
	Kind     Kind
	Agent    string // AgentStatus, AgentInvoke, AgentResult, AgentActuate; EngineSync: the engine
	Function string // Invoke, Results
	Digest   string // Module: a module digest (sha256:<hex>)
	User     string // Response: the requester whose response space it is
}

// Parse tells which Deviceless topic name is. ok is false when name lies outside the
// prefix (device space); inside it, a name that is not one of the layout's topics (the
// prefix alone, other or extra levels, an empty agent or function, a wildcard) has Kind
// Unknown. A response space takes any levels below the requester's. Each builder's topic parses back: Parse(t.AgentStatus("a")) is
// {AgentStatus, "a", ""}. Parse does not allocate.
func (t Topics) Parse(name string) (r Route, ok bool) {
	p := t.p()
	if !strings.HasPrefix(name, p) {
		return Route{}, false
	}
	rest := name[len(p):]
	if rest == "" {
		return Route{}, true
	}
	if rest[0] != '/' {
		return Route{}, false // "devicelessX/..." is outside "deviceless"
	}
	zone, rest, more := strings.Cut(rest[1:], "/")
	switch zone {
	case "agents":
		agent, leaf, more := strings.Cut(rest, "/")
		if !more || !isName(agent) {
			return Route{}, true
		}
		switch leaf {
		case "status":
			return Route{Kind: AgentStatus, Agent: agent}, true
		case "invoke":
			return Route{Kind: AgentInvoke, Agent: agent}, true
		case "result":
			return Route{Kind: AgentResult, Agent: agent}, true
		case "actuate":
			return Route{Kind: AgentActuate, Agent: agent}, true
		case "modules":
			return Route{Kind: AgentModules, Agent: agent}, true
		}
	case "invoke":
		if more && isName(rest) {
			return Route{Kind: Invoke, Function: rest}, true
		}
	case "results":
		if more && isName(rest) {
			return Route{Kind: Results, Function: rest}, true
		}
	case "modules":
		if more && IsModuleDigest(rest) {
			return Route{Kind: Module, Digest: rest}, true
		}
	case "deadletter":
		if !more {
			return Route{Kind: DeadLetter}, true
		}
	case "engines":
		engine, leaf, more := strings.Cut(rest, "/")
		if more && isName(engine) && leaf == "sync" {
			return Route{Kind: EngineSync, Agent: engine}, true
		}
	case "responses":
		user, below, _ := strings.Cut(rest, "/")
		if more && isName(user) && !strings.ContainsAny(below, "+#") {
			return Route{Kind: Response, User: user}, true
		}
	}
	return Route{}, true
}

// isName reports whether s can be an agent id or function name in a topic: one
// non-empty level without wildcards.
func isName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#")
}
