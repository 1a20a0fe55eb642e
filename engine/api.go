package engine

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/deviceless/deviceless/broker"
)

// APIConfig secures the HTTP API (docs/security.md). By default every endpoint but
// /healthz and /readyz needs credentials: HTTP basic with the broker's users, or a bearer
// token for programs.
type APIConfig struct {
	// Open serves the API without authentication, every caller as admin. Only for a
	// loopback listen address (the demo); the engine says so loudly at start.
	Open bool `yaml:"open"`
	// Tokens are API tokens for programs (`Authorization: Bearer <token>`).
	Tokens []APIToken `yaml:"tokens"`
	// AllowedHosts are Host header values accepted besides the listen address (a name
	// the API is reached by through a proxy, e.g. "deviceless.example.com"); "*" turns the
	// check off. The check stops DNS rebinding: a web page's name pointed at 127.0.0.1.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// MaxConcurrent bounds requests in progress; more are answered 503. Default 64.
	MaxConcurrent int `yaml:"max_concurrent"`
}

// APIToken is one token: only its SHA-256 is stored (`deviceless token` makes both).
type APIToken struct {
	Name string      `yaml:"name"`
	Hash string      `yaml:"hash"` // "sha256:" + hex of the token
	Role broker.Role `yaml:"role"` // viewer, client, developer or admin
}

// RoleViewer is an HTTP-only role for tokens: it reads (rules, agents, invocations,
// metrics, dry runs) and invokes nothing.
const RoleViewer broker.Role = "viewer"

// DefaultAPIConcurrency is the default bound on HTTP requests in progress.
const DefaultAPIConcurrency = 64

// access is what an endpoint needs.
type access int

const (
	accessNone   access = iota // health probes
	accessRead                 // viewer, client, developer, admin
	accessInvoke               // client, developer, admin
	accessDeploy               // developer, admin (the handler checks the namespace)
	accessAdmin                // admin
)

func (a access) allows(role broker.Role) bool {
	switch a {
	case accessNone:
		return true
	case accessRead:
		return role == RoleViewer || role == broker.RoleClient || role == broker.RoleDeveloper || role == broker.RoleAdmin
	case accessInvoke:
		return role == broker.RoleClient || role == broker.RoleDeveloper || role == broker.RoleAdmin
	case accessDeploy:
		return role == broker.RoleDeveloper || role == broker.RoleAdmin
	}
	return role == broker.RoleAdmin
}

// NewAPIToken returns a random token and the hash to put in the config.
func NewAPIToken() (token, hash string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	token = "dl_" + hex.EncodeToString(b[:])
	return token, HashAPIToken(token)
}

// HashAPIToken is the value of APIToken.Hash for token.
func HashAPIToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tokenTable finds API tokens by their SHA-256.
type tokenTable map[[32]byte]APIToken

func newTokenTable(tokens []APIToken) tokenTable {
	t := make(tokenTable, len(tokens))
	for _, tok := range tokens {
		var sum [32]byte
		h, _ := hex.DecodeString(strings.TrimPrefix(tok.Hash, "sha256:"))
		copy(sum[:], h)
		t[sum] = tok
	}
	return t
}

// lookup returns the token whose hash is token's; "" is no token.
func (t tokenTable) lookup(token string) (APIToken, bool) {
	if token == "" {
		return APIToken{}, false
	}
	tok, ok := t[sha256.Sum256([]byte(token))]
	return tok, ok
}

func (c *APIConfig) validate(listen string) error {
	var errs []error
	if c.Open && listen != "off" && !loopbackListen(listen) {
		errs = append(errs, fmt.Errorf("api.open: the API may be open only on a loopback address, not %q", listen))
	}
	seen := map[string]bool{}
	for i, t := range c.Tokens {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("api.tokens[%d]: needs a name", i))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("api.tokens[%d]: duplicate name %q", i, t.Name))
		}
		seen[t.Name] = true
		if h, ok := strings.CutPrefix(t.Hash, "sha256:"); !ok || len(h) != 64 || !isHex(h) {
			errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): hash must be sha256:<64 hex digits> (deviceless token prints one)", i, t.Name))
		}
		switch t.Role {
		case RoleViewer, broker.RoleClient, broker.RoleAdmin:
		case broker.RoleDeveloper:
			if err := validNamespace(t.Name); err != nil {
				errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): a developer's name is its namespace: %w", i, t.Name, err))
			}
		default:
			errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): role %q: use viewer, client, developer or admin", i, t.Name, t.Role))
		}
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("api.max_concurrent: %d is negative", c.MaxConcurrent))
	}
	return errors.Join(errs...)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guard authenticates and bounds HTTP requests before the API's handlers.
type guard struct {
	open      bool
	users     *broker.Credentials
	tokens    map[[32]byte]APIToken
	hosts     map[string]bool // accepted Host values (lower case, with port)
	anyHost   bool
	slots     chan struct{}
	failures  *broker.FailureLimiter
	onRefusal func(reason string)
}

func newGuard(cfg APIConfig, users []broker.User, listenAddr string, onRefusal func(string)) *guard {
	g := &guard{open: cfg.Open, users: broker.NewCredentials(users), tokens: map[[32]byte]APIToken{},
		hosts: map[string]bool{}, failures: broker.NewFailureLimiter(10, time.Minute), onRefusal: onRefusal}
	for _, t := range cfg.Tokens {
		var sum [32]byte
		h, _ := hex.DecodeString(strings.TrimPrefix(t.Hash, "sha256:"))
		copy(sum[:], h)
		g.tokens[sum] = t
	}
	n := cfg.MaxConcurrent
	if n == 0 {
		n = DefaultAPIConcurrency
	}
	g.slots = make(chan struct{}, n)
	if host, port, err := net.SplitHostPort(listenAddr); err == nil {
		g.hosts[strings.ToLower(net.JoinHostPort(host, port))] = true
		ip := net.ParseIP(host)
		if host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
			for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
				g.hosts[net.JoinHostPort(h, port)] = true
			}
		}
	}
	for _, h := range cfg.AllowedHosts {
		if h == "*" {
			g.anyHost = true
		}
		g.hosts[strings.ToLower(h)] = true
	}
	return g
}

// wrap applies the checks in the order that costs least for a refused request.
func (g *guard) wrap(need access, h http.HandlerFunc) http.HandlerFunc {
	return g.wrapSlots(g.slots, need, h)
}

// wrapSlots is wrap with its own bound on requests in progress: long-lived requests (event
// streams) take slots of their own pool, not of api.max_concurrent.
func (g *guard) wrapSlots(slots chan struct{}, need access, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !g.anyHost && !g.hosts[strings.ToLower(r.Host)] {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil || !g.hosts[strings.ToLower(host)] {
				g.refuse(w, http.StatusMisdirectedRequest, "host", fmt.Sprintf("Host %q is not this API's address (api.allowed_hosts)", r.Host))
				return
			}
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			w.Header().Set("Retry-After", "1")
			g.refuse(w, http.StatusServiceUnavailable, "busy", "too many requests in progress")
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			// A web page can POST text/plain or a form to any address without a CORS
			// preflight; requiring JSON makes a browser ask first, and we never allow it.
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				g.refuse(w, http.StatusUnsupportedMediaType, "content_type", r.Method+" bodies must be Content-Type: application/json")
				return
			}
		}
		if need == accessNone {
			h(w, r)
			return
		}
		c, status, msg := g.authenticate(r)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="deviceless", charset="UTF-8"`)
			}
			g.refuse(w, status, "auth", msg)
			return
		}
		if !need.allows(c.role) {
			g.refuse(w, http.StatusForbidden, "role", fmt.Sprintf("role %q may not do this", c.role))
			return
		}
		// Handlers learn who calls (usage, namespaces) from the request's context.
		h(w, withCaller(r, c))
	}
}

func (g *guard) authenticate(r *http.Request) (caller, int, string) {
	if g.open {
		return openCaller, 0, ""
	}
	ip := remoteIP(r)
	if g.failures.Blocked(ip) {
		return caller{}, http.StatusTooManyRequests, "too many failed authentications from this address; wait a minute"
	}
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		for h, t := range g.tokens {
			if subtle.ConstantTimeCompare(h[:], sum[:]) == 1 {
				return caller{kind: callerToken, name: t.Name, role: t.Role}, 0, ""
			}
		}
		g.failures.Fail(ip)
		return caller{}, http.StatusUnauthorized, "unknown token"
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if role, ok := g.users.Check(user, pass); ok {
			return caller{kind: callerUser, name: user, role: role}, 0, ""
		}
		g.failures.Fail(ip)
		return caller{}, http.StatusUnauthorized, "wrong username or password"
	}
	return caller{}, http.StatusUnauthorized, "authentication required: HTTP basic (a broker user) or Authorization: Bearer <token>"
}

func (g *guard) refuse(w http.ResponseWriter, code int, reason, msg string) {
	if g.onRefusal != nil {
		g.onRefusal(reason)
	}
	writeError(w, code, errors.New(msg))
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
