package broker

import (
	"sync"
	"time"
)

// Credentials checks usernames and passwords against a list of users the way the broker
// does (bcrypt, the same constant-time refusal of unknown users, and the cache that spares
// a repeated correct password its bcrypt cost). The engine's HTTP API authenticates with it.
type Credentials struct{ p *policy }

// NewCredentials returns a checker for users.
func NewCredentials(users []User) *Credentials {
	return &Credentials{p: newPolicy(&Config{Users: users})}
}

// Check returns the user's role when the password matches.
func (c *Credentials) Check(username, password string) (Role, bool) {
	role, fail := c.p.authenticate(username, true, []byte(password))
	return role, fail == failNone
}

// FailureLimiter blocks an address after max failed authentications within window, so
// that guessing passwords costs time and every guess does not cost a bcrypt check. The
// broker (CONNECT) and the engine's HTTP API use it.
type FailureLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	by     map[string]*failures
	now    func() time.Time
}

type failures struct {
	n     int
	since time.Time
}

// maxTracked bounds the limiter's memory under a flood from many addresses.
const maxTracked = 10000

// NewFailureLimiter blocks an address after max failures within window.
func NewFailureLimiter(max int, window time.Duration) *FailureLimiter {
	return &FailureLimiter{max: max, window: window, by: map[string]*failures{}, now: time.Now}
}

// Blocked reports whether ip has failed too often within the window.
func (l *FailureLimiter) Blocked(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.by[ip]
	if f == nil {
		return false
	}
	if l.now().Sub(f.since) > l.window {
		delete(l.by, ip)
		return false
	}
	return f.n >= l.max
}

// Fail counts one failed authentication from ip.
func (l *FailureLimiter) Fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.by[ip]
	if f == nil || now.Sub(f.since) > l.window {
		if len(l.by) >= maxTracked {
			for k, v := range l.by {
				if now.Sub(v.since) > l.window {
					delete(l.by, k)
				}
			}
			if len(l.by) >= maxTracked {
				clear(l.by) // a flood from everywhere: start over rather than grow
			}
		}
		f = &failures{since: now}
		l.by[ip] = f
	}
	f.n++
}
