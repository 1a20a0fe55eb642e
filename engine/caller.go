package engine

import (
	"context"
	"net/http"

	"github.com/deviceless/deviceless/broker"
)

// caller is who asks the engine for something: an HTTP user or token, an MQTT user, a
// rule, or the engine itself (Engine.Invoke). Usage is metered by it, and what it may do
// follows its role and, for a developer, its namespace (docs/security.md).
type caller struct {
	kind callerKind
	name string // user, token or rule name
	role broker.Role
}

type callerKind uint8

const (
	callerEngine    callerKind = iota // Engine.Invoke: a program embedding the engine
	callerUser                        // a broker user, over HTTP basic or MQTT
	callerToken                       // an API token
	callerRule                        // a rule's invoke action
	callerOpen                        // anybody, on an open API (api.open)
	callerAnonymous                   // an anonymous MQTT client (allow_anonymous)
	callerExternal                    // a client of an external broker, whose users the engine cannot see
)

// The callers that are no user, token or rule.
var (
	engineCaller   = caller{kind: callerEngine, role: broker.RoleAdmin}
	openCaller     = caller{kind: callerOpen, role: broker.RoleAdmin}
	externalCaller = caller{kind: callerExternal, role: broker.RoleClient}
)

func ruleCaller(rule string) caller {
	return caller{kind: callerRule, name: rule, role: broker.RoleAdmin}
}

// String is the caller as usage, history and logs name it: user:alice, token:ci,
// rule:hot-greenhouse, anonymous, external, api:open or engine.
func (c caller) String() string {
	switch c.kind {
	case callerUser:
		return "user:" + c.name
	case callerToken:
		return "token:" + c.name
	case callerRule:
		return "rule:" + c.name
	case callerOpen:
		return "api:open"
	case callerAnonymous:
		return "anonymous"
	case callerExternal:
		return "external"
	}
	return "engine"
}

// namespace is the namespace a developer owns: its name. Others own none (an admin may
// deploy under every namespace, see mayManage).
func (c caller) namespace() string {
	if c.role == broker.RoleDeveloper && (c.kind == callerUser || c.kind == callerToken) {
		return c.name
	}
	return ""
}

// is reports whether the caller is the one an `invokers` entry names: "alice" (a user or
// token of that name), "user:alice", "token:ci", or "*" (everybody who may invoke).
func (c caller) is(entry string) bool {
	switch entry {
	case "*":
		return true
	case c.String():
		return true
	}
	return (c.kind == callerUser || c.kind == callerToken) && entry == c.name
}

type callerKey struct{}

func withCaller(r *http.Request, c caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// callerOf is the authenticated caller of an API request (the guard put it in the
// request's context); a request that did not pass the guard has none and may do nothing.
func callerOf(r *http.Request) caller {
	c, ok := r.Context().Value(callerKey{}).(caller)
	if !ok {
		return caller{kind: callerAnonymous}
	}
	return c
}

// mqttCaller is the publisher of an MQTT invoke request, with the role the broker gave it.
func (e *Engine) mqttCaller(b *broker.Event) caller {
	if e.auth == nil {
		return externalCaller
	}
	if b.Username == "" {
		if !e.cfg.Broker.AllowAnonymous {
			return caller{kind: callerAnonymous}
		}
		role := e.cfg.Broker.AnonymousRole
		if role == "" {
			role = broker.RoleDevice
		}
		return caller{kind: callerAnonymous, role: role}
	}
	role, ok := e.functions.roles[b.Username]
	if !ok {
		return caller{kind: callerUser, name: b.Username}
	}
	return caller{kind: callerUser, name: b.Username, role: role}
}
