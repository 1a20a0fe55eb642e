package broker

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/topic"
)

// HashPassword returns the bcrypt hash (cost bcrypt.DefaultCost) of password, the value
// of a user's password_hash. `deviceless passwd` prints it.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("hash password: empty password")
	}
	if len(password) > maxBcryptPasswordBytes {
		return "", fmt.Errorf("hash password: longer than %d bytes", maxBcryptPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// policy decides who may connect and which topics they may use. It is immutable after
// construction except for the verified-password cache.
type policy struct {
	topics    protocol.Topics
	users     map[string]User
	anonymous bool
	anonRole  Role

	// verified caches, per username, an HMAC of the last password that matched the
	// bcrypt hash, so reconnect storms do not cost a bcrypt verification each.
	mu       sync.Mutex
	verified map[string][32]byte
	key      [32]byte
}

func newPolicy(c *Config) *policy {
	p := &policy{
		topics:    protocol.Topics{Prefix: c.Prefix}, // validated with ValidatePrefix
		users:     make(map[string]User, len(c.Users)),
		anonymous: c.AllowAnonymous,
		anonRole:  c.AnonymousRole,
		verified:  map[string][32]byte{},
	}
	for _, u := range c.Users {
		p.users[u.Username] = u
	}
	_, _ = rand.Read(p.key[:])
	return p
}

// authFailure says why a connection was refused.
type authFailure string

const (
	failNone        authFailure = ""
	failAnonymous   authFailure = "anonymous"
	failUnknownUser authFailure = "unknown_user"
	failPassword    authFailure = "bad_password"
	failWill        authFailure = "will_not_authorized"
	failTakeover    authFailure = "client_id_owned"
	failKeepalive   authFailure = "keepalive"
	failReservedID  authFailure = "reserved_client_id"
	failAgentID     authFailure = "agent_client_id"
	failTooMany     authFailure = "too_many_failures"
)

// authenticate checks credentials and returns the user's role.
func (p *policy) authenticate(username string, hasUsername bool, password []byte) (Role, authFailure) {
	return p.check(username, hasUsername, password, true)
}

// check is authenticate; without slow, only a password the cache knows is accepted (no
// bcrypt), which is what an address blocked for guessing still gets.
func (p *policy) check(username string, hasUsername bool, password []byte, slow bool) (Role, authFailure) {
	if !hasUsername || username == "" {
		if !p.anonymous {
			return "", failAnonymous
		}
		return p.anonRole, failNone
	}
	u, ok := p.users[username]
	if !ok && !slow {
		return "", failTooMany
	}
	if !ok {
		// Spend the same time as a real check so usernames cannot be probed.
		_ = bcrypt.CompareHashAndPassword(dummyHash, password)
		return "", failUnknownUser
	}
	mac := hmac.New(sha256.New, p.key[:])
	mac.Write([]byte(u.PasswordHash))
	mac.Write([]byte{0})
	mac.Write(password)
	var sum [32]byte
	copy(sum[:], mac.Sum(nil))
	p.mu.Lock()
	cached, ok := p.verified[username]
	p.mu.Unlock()
	if ok && hmac.Equal(cached[:], sum[:]) {
		return u.Role, failNone
	}
	if !slow {
		return "", failTooMany
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), password) != nil {
		return "", failPassword
	}
	p.mu.Lock()
	p.verified[username] = sum
	p.mu.Unlock()
	return u.Role, failNone
}

// dummyHash is a valid bcrypt hash of a random password, for constant-time refusals.
var dummyHash = []byte("$2a$10$fOY3/XGNOkMPFGHOdx7s/eJqL1b2VHj3CR47EpwE2gHN9WAzp9yJK")

// role returns the role of a connected (already authenticated) username; ok is false
// when the user no longer exists (e.g. a session restored from the store).
func (p *policy) role(username string) (Role, bool) {
	if username == "" {
		if p.anonymous {
			return p.anonRole, true
		}
		return "", false
	}
	u, ok := p.users[username]
	return u.Role, ok
}

// allowed reports whether a user with role and username may write to name (write) or
// read from a topic filter or topic name (!write). A filter is allowed when it can match
// at least one topic the user may read; every delivery is checked again against the
// concrete topic, so a wide filter never leaks what the role may not read.
func (p *policy) allowed(role Role, username, name string, write bool) bool {
	if role == RoleAdmin {
		return true
	}
	if !write && len(name) > 7 && strings.EqualFold(name[:7], "$share/") {
		// $share/{group}/{filter}
		i := strings.IndexByte(name[7:], '/')
		if i < 0 {
			return false
		}
		name = name[7+i+1:]
	}
	if name == "" {
		return false
	}
	if name[0] == '$' {
		// $SYS is read-only broker state, readable by every authenticated client.
		return !write && (name == "$SYS" || strings.HasPrefix(name, "$SYS/"))
	}
	// Outside the prefix (the device space) every role reads and writes. A filter lies
	// inside only when its first levels are literally the prefix.
	if !p.topics.Internal(name) {
		return true
	}
	if write {
		switch role {
		case RoleAgent:
			// Its status and results, and requests for wasm modules it lacks (the engine
			// answers on the agent's own modules topic).
			return name == p.topics.AgentStatus(username) || name == p.topics.AgentResult(username) ||
				topic.Intersects(name, p.topics.AllModules())
		case RoleClient, RoleDeveloper:
			return topic.Intersects(name, p.topics.InvokeTree())
		}
		return false
	}
	switch role {
	case RoleAgent:
		return topic.Intersects(name, p.topics.AgentAll(username))
	case RoleClient, RoleDeveloper:
		// Every function's results, and its own response space (the engine answers its
		// invoke requests there and nowhere else; nobody but the engine writes it).
		// Anonymous clients have no response space.
		return topic.Intersects(name, p.topics.ResultsTree()) ||
			(username != "" && topic.Intersects(name, p.topics.ResponsesTree(username)))
	}
	return false
}
