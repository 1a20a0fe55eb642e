package broker

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
