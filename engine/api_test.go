package engine

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/broker"
)

// TestAPIAccess calls the real engine's API as each kind of caller would: nobody, a
// device, an agent, a client, an admin, read-only and client tokens, a web page (simple
// text/plain or form POSTs), a DNS-rebinding page (foreign Host), and a password guesser.
func TestAPIAccess(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "functions:\n  echo: {runtime: sh, code: cat}\nrules:\n  - name: r\n    on: in/+\n    do: [{publish: {topic: '\"out\"'}}]\n")
	cfg := testConfig(t, dir)
	viewer, client := "viewer-token-0123456789", "client-token-0123456789"
	cfg.API.Tokens = append(cfg.API.Tokens,
		APIToken{Name: "dash", Hash: HashAPIToken(viewer), Role: RoleViewer},
		APIToken{Name: "app", Hash: HashAPIToken(client), Role: broker.RoleClient})
	e := startEngine(t, cfg)
	_, port, _ := net.SplitHostPort(e.HTTPAddr())
	base := "http://" + e.HTTPAddr()

	type call struct {
		name, method, path string
		user, pass, token  string
		contentType, host  string
		body               string
		want               int
	}
	const rules, invoke, dry = "/api/v1/rules", "/api/v1/invoke/nosuch", "/api/v1/dryrun"
	dryBody := `{"topic":"in/a","payload":1}`
	for _, c := range []call{
		{name: "health needs nothing", method: "GET", path: "/healthz", want: 200},
		{name: "readiness needs nothing", method: "GET", path: "/readyz", want: 200},
		{name: "anonymous read", method: "GET", path: rules, want: 401},
		{name: "anonymous metrics", method: "GET", path: "/metrics", want: 401},
		{name: "anonymous invoke", method: "POST", path: invoke, contentType: "application/json", body: "{}", want: 401},
		{name: "wrong password", method: "GET", path: rules, user: "app", pass: "nope", want: 401},
		{name: "unknown user", method: "GET", path: rules, user: "mallory", pass: "pw-mallory", want: 401},
		{name: "unknown token", method: "GET", path: rules, token: "guess", want: 401},
		{name: "device reads", method: "GET", path: rules, user: "dev", pass: "pw-dev", want: 403},
		{name: "agent reads", method: "GET", path: "/api/v1/agents", user: "a1", pass: "pw-a1", want: 403},
		{name: "client reads", method: "GET", path: rules, user: "app", pass: "pw-app", want: 200},
		{name: "client invokes", method: "POST", path: invoke, user: "app", pass: "pw-app", contentType: "application/json", body: "{}", want: 404},
		{name: "admin reads metrics", method: "GET", path: "/metrics", user: "ops", pass: "pw-ops", want: 200},
		{name: "viewer token reads", method: "GET", path: "/api/v1/invocations", token: viewer, want: 200},
		{name: "viewer token dry run", method: "POST", path: dry, token: viewer, contentType: "application/json", body: dryBody, want: 200},
		{name: "viewer token invokes", method: "POST", path: invoke, token: viewer, contentType: "application/json", body: "{}", want: 403},
		{name: "client token invokes", method: "POST", path: invoke, token: client, contentType: "application/json; charset=utf-8", body: "{}", want: 404},
		{name: "web page text/plain POST", method: "POST", path: invoke, token: client, contentType: "text/plain", body: "{}", want: 415},
		{name: "web page form POST", method: "POST", path: invoke, token: client, contentType: "application/x-www-form-urlencoded", body: "a=b", want: 415},
		{name: "POST without a type", method: "POST", path: dry, token: client, body: dryBody, want: 415},
		{name: "rebinding Host", method: "GET", path: rules, token: client, host: "evil.example.com:" + port, want: 421},
		{name: "rebinding Host on health", method: "GET", path: "/healthz", host: "evil.example.com", want: 421},
		{name: "localhost Host", method: "GET", path: rules, token: client, host: "localhost:" + port, want: 200},
		{name: "web page text/plain PUT", method: "PUT", path: "/api/v1/functions/f", user: "ops", pass: "pw-ops", contentType: "text/plain", body: "{}", want: 415},
		{name: "client deploys", method: "PUT", path: "/api/v1/functions/f", token: client, contentType: "application/json", body: `{"runtime":"sh","code":"x"}`, want: 403},
		{name: "viewer deletes", method: "DELETE", path: "/api/v1/functions/f", token: viewer, want: 403},
		{name: "viewer reads usage", method: "GET", path: "/api/v1/usage", token: viewer, want: 200},
		{name: "admin deploys", method: "PUT", path: "/api/v1/functions/f", user: "ops", pass: "pw-ops", contentType: "application/json", body: `{"runtime":"sh","code":"x"}`, want: 201},
		{name: "device lists functions", method: "GET", path: "/api/v1/functions", user: "dev", pass: "pw-dev", want: 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			if c.host != "" {
				req.Host = c.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s %s: HTTP %d, want %d: %s", c.method, c.path, resp.StatusCode, c.want, b)
			}
		})
	}

	// A password guesser is stopped after 10 failures a minute, even with the right one.
	guess := func(pass string) int {
		req, _ := http.NewRequest("GET", base+rules, nil)
		req.SetBasicAuth("app", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Earlier cases already failed 3 times from this address.
	codes := []int{}
	for i := range 10 {
		codes = append(codes, guess("guess-"+string(rune('a'+i))))
	}
	if codes[0] != 401 || codes[len(codes)-1] != 429 {
		t.Errorf("guessing: codes %v, want 401 first and 429 once blocked", codes)
	}
	if code := guess("pw-app"); code != 429 {
		t.Errorf("right password while blocked: HTTP %d, want 429", code)
	}
}

// The dry run evaluates the loaded rules: it works with the rule files gone, and never
// reads them (a dry run per request used to reload every file).
func TestDryRunUsesLoadedRules(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - name: hot\n    on: in/+\n    if: payload.t > 1\n    do: [{publish: {topic: '\"out\"'}}]\n")
	cfg := testConfig(t, dir)
	cfg.ReloadDelay = time.Hour // the removal below must not reach the running set
	e := startEngine(t, cfg)
	if err := os.Remove(filepath.Join(dir, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
	var dry struct{ Firings []FiringView }
	if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/dryrun", `{"topic":"in/a","payload":{"t":5}}`, &dry); code != 200 || len(dry.Firings) != 1 || dry.Firings[0].Rule != "hot" {
		t.Fatalf("dry run: HTTP %d, %+v", code, dry)
	}
}

func TestAPIConfigChecks(t *testing.T) {
	for _, c := range []struct {
		name string
		api  APIConfig
		http string
		want string
	}{
		{"open on all interfaces", APIConfig{Open: true}, "0.0.0.0:8080", "loopback"},
		{"open on a LAN address", APIConfig{Open: true}, "192.168.1.5:8080", "loopback"},
		{"token without name", APIConfig{Tokens: []APIToken{{Hash: HashAPIToken("x"), Role: "admin"}}}, "127.0.0.1:0", "needs a name"},
		{"token with a plain secret", APIConfig{Tokens: []APIToken{{Name: "t", Hash: "secret", Role: "admin"}}}, "127.0.0.1:0", "sha256:"},
		{"token as a device", APIConfig{Tokens: []APIToken{{Name: "t", Hash: HashAPIToken("x"), Role: "device"}}}, "127.0.0.1:0", "viewer, client, developer or admin"},
		{"developer token with a dotted name", APIConfig{Tokens: []APIToken{{Name: "a.b", Hash: HashAPIToken("x"), Role: "developer"}}}, "127.0.0.1:0", "namespace"},
		{"duplicate token", APIConfig{Tokens: []APIToken{{Name: "t", Hash: HashAPIToken("x"), Role: "admin"}, {Name: "t", Hash: HashAPIToken("y"), Role: "admin"}}}, "127.0.0.1:0", "duplicate"},
	} {
		cfg := Config{HTTP: c.http, API: c.api}
		err := cfg.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	ok := Config{HTTP: "127.0.0.1:8080", API: APIConfig{Open: true}}
	if err := ok.validate(); err != nil {
		t.Errorf("open on loopback refused: %v", err)
	}
}

// Requests beyond max_concurrent are answered 503 at once instead of queueing.
func TestAPIConcurrencyBound(t *testing.T) {
	g := newGuard(APIConfig{Open: true, MaxConcurrent: 2, AllowedHosts: []string{"*"}}, nil, "127.0.0.1:0", nil)
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	srv := httptest.NewServer(g.wrap(accessRead, func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-release
	}))
	defer srv.Close()
	var done sync.WaitGroup
	for range 2 {
		done.Add(1)
		go func() {
			defer done.Done()
			if resp, err := http.Get(srv.URL); err == nil {
				resp.Body.Close()
			}
		}()
	}
	entered.Wait()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third request while two run: HTTP %d, want 503", resp.StatusCode)
	}
	close(release)
	done.Wait()
}
