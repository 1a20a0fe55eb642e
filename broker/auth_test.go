package broker

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/goccy/go-yaml"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
		t.Fatal("hash does not verify")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("73-byte password accepted")
	}
	if _, err := bcrypt.Cost(dummyHash); err != nil {
		t.Errorf("dummyHash: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	good := usersConfig(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"defaults", Config{}, ""},
		{"users", Config{Users: good}, ""},
		{"bad role", Config{Users: []User{{Username: "x", PasswordHash: good[0].PasswordHash, Role: "king"}}}, "role"},
		{"bad hash", Config{Users: []User{{Username: "x", PasswordHash: "secret", Role: RoleDevice}}}, "bcrypt"},
		{"duplicate", Config{Users: []User{good[0], good[0]}}, "duplicate"},
		{"agent with slash", Config{Users: []User{{Username: "a/b", PasswordHash: good[0].PasswordHash, Role: RoleAgent}}}, "topic level"},
		{"agent with plus", Config{Users: []User{{Username: "a+", PasswordHash: good[0].PasswordHash, Role: RoleAgent}}}, "topic level"},
		{"client with slash", Config{Users: []User{{Username: "c/d", PasswordHash: good[0].PasswordHash, Role: RoleClient}}}, "topic level"},
		{"client with hash", Config{Users: []User{{Username: "c#", PasswordHash: good[0].PasswordHash, Role: RoleClient}}}, "topic level"},
		{"bad listen", Config{Listen: "nope"}, "listen"},
		{"no listener", Config{Listen: "off"}, "no listener"},
		{"ws only", Config{Listen: "off", WebSocket: "127.0.0.1:0"}, ""},
		{"tls without cert", Config{TLS: &TLSConfig{Listen: "127.0.0.1:0"}}, "cert and key"},
		{"tls missing files", Config{TLS: &TLSConfig{Listen: "127.0.0.1:0", Cert: "/nonexistent.pem", Key: "/nonexistent.key"}}, "load cert"},
		{"prefix wildcard", Config{Prefix: "dl/#"}, "prefix"},
		{"prefix dollar", Config{Prefix: "$dl"}, "prefix"},
		{"prefix empty level", Config{Prefix: "a//b"}, "prefix"},
		{"nested prefix", Config{Prefix: "acme/dl"}, ""},
		{"anonymous agent", Config{AllowAnonymous: true, AnonymousRole: RoleAgent}, "anonymous_role"},
		{"bad anonymous role", Config{AnonymousRole: "guest"}, "anonymous_role"},
		{"tiny packets", Config{Limits: Limits{MaxPacketSize: 10}}, "max_packet_size"},
		{"keepalive fraction", Config{Limits: Limits{MaxKeepalive: 1500 * time.Millisecond}}, "max_keepalive"},
		{"sys interval", Config{SysInterval: time.Millisecond}, "sys_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	cfg := Config{Prefix: "dl"}.withDefaults()
	p := newPolicy(&cfg)
	for _, tc := range []struct {
		role  Role
		user  string
		topic string
		write bool
		want  bool
	}{
		{RoleDevice, "d", "sensors/t", true, true},
		{RoleDevice, "d", "dl/agents/x/invoke", true, false},
		{RoleDevice, "d", "dl", true, false},
		{RoleDevice, "d", "dlx/a", true, true},
		{RoleDevice, "d", "$SYS/broker/uptime", true, false},
		{RoleDevice, "d", "#", false, true}, // granted; deliveries are filtered
		{RoleDevice, "d", "dl/#", false, false},
		{RoleDevice, "d", "dl/results/f", false, false},
		{RoleDevice, "d", "+/results/f", false, true},
		{RoleDevice, "d", "$SYS/#", false, true},
		{RoleDevice, "d", "$share/g/dl/#", false, false},
		{RoleDevice, "d", "$share/g/sensors/#", false, true},
		{RoleAgent, "a1", "dl/agents/a1/status", true, true},
		{RoleAgent, "a1", "dl/agents/a1/result", true, true},
		{RoleAgent, "a1", "dl/agents/a1/invoke", true, false},
		{RoleAgent, "a1", "dl/agents/a2/status", true, false},
		{RoleAgent, "a1", "dl/results/f", true, false},
		{RoleAgent, "a1", "sensors/gpio", true, true},
		{RoleAgent, "a1", "dl/agents/a1/#", false, true},
		{RoleAgent, "a1", "dl/agents/a1/invoke", false, true},
		{RoleAgent, "a1", "dl/agents/a2/invoke", false, false},
		{RoleAgent, "a1", "dl/agents/a2/#", false, false},
		{RoleAgent, "a1", "dl/agents/+/invoke", false, true}, // granted; only a1's is delivered
		{RoleAgent, "a1", "dl/results/#", false, false},
		{RoleClient, "c", "dl/invoke/cool", true, true},
		{RoleClient, "c", "dl/invoke", true, true},
		{RoleClient, "c", "dl/agents/a1/invoke", true, false},
		{RoleClient, "c", "dl/results/cool", false, true},
		{RoleClient, "c", "dl/results/#", false, true},
		{RoleClient, "c", "dl/agents/a1/status", false, false},
		{RoleClient, "c", "replies/c", false, true},
		// The response space: its own user reads it, nobody but admins writes it.
		{RoleClient, "c", "dl/responses/c/x", false, true},
		{RoleClient, "c", "dl/responses/c", false, true},
		{RoleClient, "c", "dl/responses/c/#", false, true},
		{RoleClient, "c", "dl/responses/#", false, true}, // granted; only c's is delivered
		{RoleClient, "c", "dl/responses/+/x", false, true},
		{RoleClient, "c", "dl/responses/d/x", false, false},
		{RoleClient, "c", "dl/responses/d/#", false, false},
		{RoleClient, "c", "dl/responses/c/x", true, false},
		{RoleClient, "c", "dl/responses/d/x", true, false},
		{RoleDevice, "d", "dl/responses/d/x", false, false},
		{RoleDevice, "d", "dl/responses/c/x", true, false},
		{RoleAgent, "a1", "dl/responses/a1/x", false, false},
		{RoleAgent, "a1", "dl/responses/c/x", true, false},
		// wasm modules: agents request them, only the engine answers (on the agent's own
		// modules topic), devices and clients neither ask nor read.
		{RoleAgent, "a1", "dl/modules/sha256:ab", true, true},
		{RoleAgent, "a1", "dl/modules/+", false, false},
		{RoleAgent, "a1", "dl/agents/a1/modules", false, true},
		{RoleAgent, "a1", "dl/agents/a1/modules", true, false},
		{RoleAgent, "a1", "dl/agents/a2/modules", false, false},
		{RoleDevice, "d", "dl/modules/sha256:ab", true, false},
		{RoleDevice, "d", "dl/agents/a1/modules", false, false},
		{RoleClient, "c", "dl/modules/sha256:ab", true, false},
		{RoleDeveloper, "alice", "dl/modules/sha256:ab", true, false},
		{RoleClient, "", "dl/responses//x", false, false}, // anonymous: no response space
		{RoleAdmin, "r", "dl/responses/c/x", false, true},
		{RoleDeveloper, "alice", "dl/invoke/alice.fan@2", true, true},
		{RoleDeveloper, "alice", "dl/results/#", false, true},
		{RoleDeveloper, "alice", "dl/agents/a1/invoke", true, false},
		{RoleDeveloper, "alice", "dl/agents/a1/#", false, false},
		{RoleAdmin, "r", "dl/agents/a1/invoke", true, true},
		{RoleAdmin, "r", "dl/#", false, true},
	} {
		if got := p.allowed(tc.role, tc.user, tc.topic, tc.write); got != tc.want {
			t.Errorf("%s %s write=%v %q: got %v, want %v", tc.role, tc.user, tc.write, tc.topic, got, tc.want)
		}
	}
}

// The "Done when" list: a wrong password is refused (mosquitto_pub exits non-zero), and
// so are unknown users and, unless allowed, anonymous clients.
func TestAuthenticationMosquitto(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	host, port := hostPort(t, b.Addr(ListenerTCP))
	pub := func(args ...string) (string, error) {
		return mosquitto(t, "mosquitto_pub", append([]string{"-h", host, "-p", port, "-t", "sensors/t", "-m", "1", "-q", "1"}, args...)...)
	}
	if out, err := pub("-u", "sensor1", "-P", "pw-sensor1"); err != nil {
		t.Fatalf("right password refused: %v: %s", err, out)
	}
	if out, err := pub("-u", "sensor1", "-P", "wrong"); err == nil {
		t.Fatalf("wrong password accepted: %s", out)
	}
	if out, err := pub("-u", "nobody", "-P", "pw-nobody"); err == nil {
		t.Fatalf("unknown user accepted: %s", out)
	}
	if out, err := pub(); err == nil {
		t.Fatalf("anonymous accepted: %s", out)
	}
	if out, err := pub("-V", "mqttv5", "-u", "sensor1", "-P", "wrong"); err == nil {
		t.Fatalf("wrong password accepted over MQTT 5: %s", out)
	}
	if got := counterValue(t, b.Server, "deviceless_broker_auth_failures_total", "reason", "bad_password"); got != 2 {
		t.Errorf("auth_failures_total{reason=bad_password} = %v, want 2", got)
	}
}

// A password guesser is stopped after limits.max_auth_failures failures a minute from its
// address: its later CONNECTs are refused without a bcrypt check. Users whose password the
// broker already verified (devices behind the same NAT) still connect; others wait.
func TestConnectGuessingLimited(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Limits.MaxAuthFailures = 3
	b := start(t, cfg)
	host, port := hostPort(t, b.Addr(ListenerTCP))
	pub := func(user, pass string) error {
		_, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", user, "-P", pass, "-t", "sensors/t", "-m", "1", "-q", "1")
		return err
	}
	if err := pub("sensor1", "pw-sensor1"); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	for i := range 3 {
		if err := pub("sensor1", "guess"+itoa(i)); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	if err := pub("sensor1", "pw-sensor1"); err != nil {
		t.Errorf("a verified user behind the blocked address was refused: %v", err)
	}
	if err := pub("a2", "pw-a2"); err == nil {
		t.Error("an unverified password was checked while the address is blocked")
	}
	if err := pub("sensor1", "guess-more"); err == nil {
		t.Error("wrong password accepted while blocked")
	}
	if got := counterValue(t, b.Server, "deviceless_broker_auth_failures_total", "reason", "too_many_failures"); got != 2 {
		t.Errorf("auth_failures_total{reason=too_many_failures} = %v, want 2", got)
	}
	if got := counterValue(t, b.Server, "deviceless_broker_auth_failures_total", "reason", "bad_password"); got != 3 {
		t.Errorf("auth_failures_total{reason=bad_password} = %v, want 3 (no bcrypt once blocked)", got)
	}
}

func TestAuthenticationPaho(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	_, err := connectConn(t, dialTCP(t, addr), connOpts{clientID: "p1", user: "sensor1", password: "nope"})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	_, err = connectConn(t, dialTCP(t, addr), connOpts{clientID: "p2"})
	if err == nil {
		t.Fatal("anonymous accepted")
	}
	mustConnect(t, addr, connOpts{clientID: "p3", user: "sensor1"})
	mustConnect(t, addr, connOpts{clientID: "p4", user: "sensor1"}) // cached verification path
}

func TestAnonymousAllowed(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.AllowAnonymous = true
	b := start(t, cfg)
	host, port := hostPort(t, b.Addr(ListenerTCP))
	if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-t", "sensors/t", "-m", "1", "-q", "1"); err != nil {
		t.Fatalf("anonymous refused although allowed: %v: %s", err, out)
	}
	// Anonymous clients are devices: nothing inside the prefix.
	anon := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "anon"})
	if r, err := anon.publish(t, "deviceless/agents/x/invoke", []byte("{}"), 1, false); err == nil {
		t.Fatalf("anonymous device published to an invoke topic: %+v", r)
	}
	// A username that is given must still be right.
	if _, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-t", "sensors/t", "-m", "1", "-u", "sensor1", "-P", "bad"); err == nil {
		t.Fatal("wrong password accepted with allow_anonymous")
	}
}

// The "Done when" list: a device cannot publish to deviceless/agents/x/invoke.
func TestDeviceCannotInvoke(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	agent := mustConnect(t, addr, connOpts{clientID: "agent-x", user: "a1"})
	agent.mustSubscribe(t, "deviceless/agents/a1/#", 1)
	root := mustConnect(t, addr, connOpts{clientID: "root", user: "root"})
	root.mustSubscribe(t, "#", 1)

	dev := mustConnect(t, addr, connOpts{clientID: "dev", user: "sensor1"})
	r, err := dev.publish(t, "deviceless/agents/a1/invoke", []byte(`{"id":"evil"}`), 1, false)
	if err == nil || r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("device publish to invoke: response %+v, err %v; want reason 0x87 not authorized", r, err)
	}
	// MQTT 3.1.1 at QoS 0 and 1: mosquitto_pub as the device (QoS 1 disconnects it).
	for _, q := range []string{"0", "1"} {
		_, _ = mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "sensor1", "-P", "pw-sensor1", "-t", "deviceless/agents/a1/invoke", "-m", "evil", "-q", q)
	}
	// The device may publish outside the prefix; that arrives, the invocations did not.
	dev.mustPublish(t, "sensors/t", "21", 1)
	root.expect(t, "sensors/t", "21")
	select {
	case m := <-agent.msgs:
		t.Fatalf("agent received %q %q", m.Topic, m.Payload)
	default:
	}
	// A device reads nothing inside the prefix, even with "#".
	dev.mustSubscribe(t, "#", 1)
	if _, err := dev.subscribe(t, "deviceless/agents/a1/invoke", 1); err == nil {
		t.Fatal("device subscribed to an agent topic")
	}
	if err := b.Publish(Message{Topic: "deviceless/agents/a1/invoke", Payload: []byte("real"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	agent.expect(t, "deviceless/agents/a1/invoke", "real")
	root.expect(t, "deviceless/agents/a1/invoke", "real")
	root.mustPublish(t, "sensors/after", "x", 1)
	dev.expect(t, "sensors/after", "x") // not the invoke before it
}

// The "Done when" list: an agent cannot read another agent's topics.
func TestAgentIsolation(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	a1 := mustConnect(t, addr, connOpts{clientID: "a1", user: "a1"})
	if sa, err := a1.subscribe(t, "deviceless/agents/a2/invoke", 1); err == nil {
		t.Fatalf("a1 subscribed to a2's invoke: %+v", sa)
	}
	if _, err := a1.subscribe(t, "deviceless/agents/a2/#", 1); err == nil {
		t.Fatal("a1 subscribed to a2/#")
	}
	a1.mustSubscribe(t, "deviceless/agents/+/invoke", 1) // granted, but filtered per topic
	a1.mustSubscribe(t, "deviceless/agents/a1/#", 1)

	// mosquitto_sub as a1 on a2's topic: the subscription is refused.
	out, err := mosquitto(t, "mosquitto_sub", "-h", host, "-p", port, "-V", "mqttv5", "-u", "a1", "-P", "pw-a1", "-t", "deviceless/agents/a2/invoke", "-C", "1", "-W", "5")
	if !strings.Contains(out, "denied") {
		t.Fatalf("mosquitto_sub as a1 on a2's invoke: %v: %q, want the subscription denied", err, out)
	}

	for _, a := range []string{"a2", "a1"} {
		if err := b.Publish(Message{Topic: "deviceless/agents/" + a + "/invoke", Payload: []byte(a), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	a1.expect(t, "deviceless/agents/a1/invoke", "a1")
	// An agent writes only its own status and result.
	if _, err := a1.publish(t, "deviceless/agents/a2/status", []byte("{}"), 1, false); err == nil {
		t.Fatal("a1 wrote a2's status")
	}
	if _, err := a1.publish(t, "deviceless/agents/a1/invoke", []byte("{}"), 1, false); err == nil {
		t.Fatal("a1 wrote its own invoke topic")
	}
	if _, err := a1.publish(t, "deviceless/agents/a1/result", []byte("{}"), 1, false); err != nil {
		t.Fatalf("a1 could not write its result: %v", err)
	}
	a1.expect(t, "deviceless/agents/a1/result", "{}")
	select {
	case m := <-a1.msgs:
		t.Fatalf("a1 received %q %q", m.Topic, m.Payload)
	default:
	}
	// A will on another agent's status is refused at connect.
	_, err = connectConn(t, dialTCP(t, addr), connOpts{clientID: "a1-will", user: "a1",
		will: &paho.WillMessage{Topic: "deviceless/agents/a2/status", Payload: []byte(`{"online":false}`), QoS: 1, Retain: true}})
	if err == nil {
		t.Fatal("a will on another agent's status was accepted")
	}
	mustConnect(t, addr, connOpts{clientID: "a1-own-will", user: "a1",
		will: &paho.WillMessage{Topic: "deviceless/agents/a1/status", Payload: []byte(`{"online":false}`), QoS: 1, Retain: true}})
}

func TestClientRole(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	in, err := b.Intake("invoke", IntakeOptions{Filters: []string{"deviceless/invoke/+"}})
	if err != nil {
		t.Fatal(err)
	}
	c := mustConnect(t, addr, connOpts{clientID: "nr", user: "nodered"})
	c.mustSubscribe(t, "deviceless/results/#", 1)
	c.mustSubscribe(t, "deviceless/responses/nodered/#", 1)
	if _, err := c.subscribe(t, "deviceless/agents/a1/status", 1); err == nil {
		t.Fatal("client subscribed to an agent status")
	}
	ctx := testContext(t)
	_, err = c.Publish(ctx, &paho.Publish{Topic: "deviceless/invoke/cool", QoS: 1, Payload: []byte(`{"args":{}}`),
		Properties: &paho.PublishProperties{ResponseTopic: "deviceless/responses/nodered/nr", CorrelationData: []byte("c1")}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := in.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Topic != "deviceless/invoke/cool" || ev.ResponseTopic != "deviceless/responses/nodered/nr" || string(ev.CorrelationData) != "c1" || ev.Username != "nodered" || ev.ClientID != "nr" || ev.QoS != 1 {
		t.Fatalf("intake event %+v", ev)
	}
	if !b.Permits(ev.Username, ev.ResponseTopic, false) || b.Permits(ev.Username, "deviceless/agents/a1/invoke", false) {
		t.Fatal("Permits disagrees with the role table")
	}
	if err := b.Publish(Message{Topic: ev.ResponseTopic, CorrelationData: ev.CorrelationData, Payload: []byte(`{"status":"ok"}`), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	m := c.next(t)
	if m.Topic != "deviceless/responses/nodered/nr" || m.Properties == nil || string(m.Properties.CorrelationData) != "c1" {
		t.Fatalf("response %+v", m)
	}
	if err := b.Publish(Message{Topic: "deviceless/results/cool", Payload: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	c.expect(t, "deviceless/results/cool", "r")
	if _, err := c.publish(t, "deviceless/agents/a1/invoke", []byte("{}"), 1, false); err == nil {
		t.Fatal("client published to an agent's invoke topic")
	}
}

// Issue 12: a requester's response space {prefix}/responses/{username}/# is readable by
// that user alone and writable by nobody but the engine (and admins). mosquitto_sub as
// another client subscribed to every response space gets only its own responses;
// mosquitto_pub as a device, an agent or another client cannot forge one.
func TestResponseSpaceIsTheRequesters(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	nr := mustConnect(t, addr, connOpts{clientID: "nr", user: "nodered"})
	nr.mustSubscribe(t, "deviceless/responses/nodered/#", 1)
	if _, err := nr.subscribe(t, "deviceless/responses/dash/#", 1); err == nil {
		t.Fatal("nodered subscribed to dash's response space")
	}
	// The rogue: another client, reading every response space it can.
	rogue := exec.Command(requireTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-V", "mqttv5", "-u", "dash", "-P", "pw-dash",
		"-t", "deviceless/responses/#", "-v", "-C", "1", "-W", "20")
	var got bytes.Buffer
	rogue.Stdout = &got
	if err := rogue.Start(); err != nil {
		t.Fatal(err)
	}
	// Forgeries, at QoS 1 (MQTT 5: refused in the PUBACK) from every role but admin.
	// nodered must receive none of them (checked below).
	for _, user := range []string{"sensor1", "a1", "dash"} {
		_, _ = mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-u", user, "-P", "pw-"+user,
			"-t", "deviceless/responses/nodered/nr", "-m", `{"status":"ok","output":"forged"}`, "-q", "1")
	}
	time.Sleep(300 * time.Millisecond) // mosquitto_sub is subscribed by now
	for _, m := range []Message{
		{Topic: "deviceless/responses/nodered/nr", Payload: []byte("for nodered"), QoS: 1},
		{Topic: "deviceless/responses/dash/x", Payload: []byte("for dash"), QoS: 1},
	} {
		if err := b.Publish(m); err != nil {
			t.Fatal(err)
		}
	}
	nr.expect(t, "deviceless/responses/nodered/nr", "for nodered")
	if err := rogue.Wait(); err != nil {
		t.Fatalf("mosquitto_sub as dash: %v (got %q)", err, got.String())
	}
	if got.String() != "deviceless/responses/dash/x for dash\n" {
		t.Fatalf("mosquitto_sub as dash on deviceless/responses/# got %q, want only its own response", got.String())
	}
	select {
	case m := <-nr.msgs:
		t.Fatalf("nodered received %s %q", m.Topic, m.Payload)
	default:
	}
}

// Client-id takeover: the same user takes over (the old connection is closed); another
// user cannot take over or inherit the session.
func TestClientIDTakeover(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	first := mustConnect(t, addr, connOpts{clientID: "edge", user: "a1", persistent: true})
	first.mustSubscribe(t, "deviceless/agents/a1/#", 1)
	if _, err := connectConn(t, dialTCP(t, addr), connOpts{clientID: "edge", user: "sensor1"}); err == nil {
		t.Fatal("another user took over the client id")
	}
	second := mustConnect(t, addr, connOpts{clientID: "edge", user: "a1", persistent: true})
	first.waitDone(t)
	if !second.connack.SessionPresent {
		t.Error("takeover by the same user did not inherit the session")
	}
	if err := b.Publish(Message{Topic: "deviceless/agents/a1/invoke", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	second.expect(t, "deviceless/agents/a1/invoke", "x")
	if _, err := connectConn(t, dialTCP(t, addr), connOpts{clientID: "inline", user: "root"}); err == nil {
		t.Fatal("the reserved client id \"inline\" was accepted")
	}
}

// An agent's id belongs to that agent user only: a device cannot squat it while the agent
// has no session (mosquitto_pub as the squatter, as an attacker would), and the agent then
// connects with it.
func TestAgentClientIDReserved(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-i", "a1", "-c", "-u", "sensor1", "-P", "pw-sensor1", "-t", "sensors/t", "-m", "1", "-q", "1"); err == nil {
		t.Fatalf("a device connected with agent a1's client id: %s", out)
	}
	if _, err := connectConn(t, dialTCP(t, addr), connOpts{clientID: "a1", user: "root", persistent: true}); err == nil {
		t.Fatal("an admin connected with agent a1's client id")
	}
	agent := mustConnect(t, addr, connOpts{clientID: "a1", user: "a1", persistent: true})
	if agent.connack.SessionPresent {
		t.Error("the agent inherited a session someone else created")
	}
	if got := counterValue(t, b.Server, "deviceless_broker_auth_failures_total", "reason", "agent_client_id"); got != 2 {
		t.Errorf("auth_failures_total{reason=agent_client_id} = %v, want 2", got)
	}
}

// The "Done when" list: TLS works with the right CA; a client with the wrong CA fails
// the handshake. mosquitto_pub/sub and paho both.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := newCerts(t, dir, "server")
	other := newCerts(t, dir, "other")
	cfg := baseConfig(t)
	cfg.TLS = &TLSConfig{Listen: "127.0.0.1:0", Cert: good.certFile, Key: good.keyFile}
	b := start(t, cfg)
	addr := b.Addr(ListenerTLS)
	host, port := hostPort(t, addr)

	// paho over TLS.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: good.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial with the right CA: %v", err)
	}
	c, err := connectConn(t, conn, connOpts{clientID: "tls1", user: "root"})
	if err != nil {
		t.Fatal(err)
	}
	c.mustSubscribe(t, "sensors/#", 1)
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: other.pool, ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("TLS handshake succeeded with the wrong CA")
	}

	// mosquitto_pub over TLS: right CA publishes, wrong CA fails the handshake.
	base := []string{"-h", host, "-p", port, "-u", "sensor1", "-P", "pw-sensor1", "-t", "sensors/tls", "-q", "1"}
	if out, err := mosquitto(t, "mosquitto_pub", append(base, "--cafile", good.caFile, "-m", "ok")...); err != nil {
		t.Fatalf("mosquitto_pub with the right CA: %v: %s", err, out)
	}
	c.expect(t, "sensors/tls", "ok")
	if out, err := mosquitto(t, "mosquitto_pub", append(base, "--cafile", other.caFile, "-m", "bad")...); err == nil {
		t.Fatalf("mosquitto_pub with the wrong CA succeeded: %s", out)
	}
	// mosquitto_sub over TLS receives.
	done := make(chan string, 1)
	go func() {
		out, err := mosquitto(t, "mosquitto_sub", "-h", host, "-p", port, "--cafile", good.caFile, "-u", "root", "-P", "pw-root",
			"-t", "sensors/sub", "-C", "1", "-W", "15", "-q", "1")
		if err != nil {
			out = "error: " + err.Error() + ": " + out
		}
		done <- out
	}()
	// Publish until the subscriber (whose start we cannot observe) has its message.
	for {
		c.mustPublish(t, "sensors/sub", "hello", 1)
		select {
		case out := <-done:
			if strings.TrimSpace(out) != "hello" {
				t.Fatalf("mosquitto_sub over TLS: %q", out)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestWebSocket(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.WebSocket = "127.0.0.1:0"
	b := start(t, cfg)
	ws := b.Addr(ListenerWebSocket)
	if _, err := connectConn(t, dialWS(t, ws), connOpts{clientID: "ws-bad", user: "sensor1", password: "x"}); err == nil {
		t.Fatal("wrong password accepted over WebSocket")
	}
	sub, err := connectConn(t, dialWS(t, ws), connOpts{clientID: "ws-sub", user: "root"})
	if err != nil {
		t.Fatal(err)
	}
	sub.mustSubscribe(t, "sensors/#", 1)
	pub, err := connectConn(t, dialWS(t, ws), connOpts{clientID: "ws-pub", user: "sensor1"})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 100_000) // spans several WebSocket reads
	pub.mustPublish(t, "sensors/ws", big, 1)
	pub.mustPublish(t, "sensors/ws", "small", 0)
	sub.expect(t, "sensors/ws", big)
	sub.expect(t, "sensors/ws", "small")
	// TCP and WebSocket clients meet.
	tcp := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "tcp", user: "sensor1"})
	tcp.mustPublish(t, "sensors/tcp", "t", 1)
	sub.expect(t, "sensors/tcp", "t")
}

// A web page on another origin cannot open an MQTT WebSocket (it could otherwise reach the
// broker from the user's browser); the listener's own origin, allowed origins and
// programs that send no Origin can.
func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.WebSocket = "127.0.0.1:0"
	cfg.WebSocketOrigins = []string{"https://dash.example.com"}
	b := start(t, cfg)
	ws := b.Addr(ListenerWebSocket)
	dial := func(origin string) (int, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: deadline}
		c, resp, err := d.Dial("ws://"+ws+"/mqtt", h)
		if c != nil {
			c.Close()
		}
		if resp != nil {
			return resp.StatusCode, err
		}
		return 0, err
	}
	for origin, want := range map[string]int{
		"":                         http.StatusSwitchingProtocols,
		"http://" + ws:             http.StatusSwitchingProtocols,
		"https://dash.example.com": http.StatusSwitchingProtocols,
		"https://evil.example.com": http.StatusForbidden,
		"http://127.0.0.1:1":       http.StatusForbidden,
		"null":                     http.StatusForbidden,
	} {
		if got, err := dial(origin); got != want {
			t.Errorf("Origin %q: HTTP %d (%v), want %d", origin, got, err, want)
		}
	}
}

// The Config struct is the `broker:` block of deviceless.yaml, decoded strictly.
func TestConfigYAML(t *testing.T) {
	src := `
listen: 127.0.0.1:1883
websocket: 127.0.0.1:8083
tls: {listen: 127.0.0.1:8883, cert: cert.pem, key: key.pem}
store: data/broker
allow_anonymous: false
users:
  - {username: gh1-sensor, password_hash: "$2a$10$abc", role: device}
  - {username: gh1-edge, password_hash: "$2a$10$abc", role: agent}
limits: {max_packet_size: 65536, max_keepalive: 5m, session_expiry: 24h, connect_timeout: 5s, max_queued: 100}
sys_interval: 30s
`
	var c Config
	if err := yaml.UnmarshalWithOptions([]byte(src), &c, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if c.TLS == nil || c.TLS.Cert != "cert.pem" || len(c.Users) != 2 || c.Users[1].Role != RoleAgent ||
		c.Limits.MaxKeepalive != 5*time.Minute || c.Limits.SessionExpiry != 24*time.Hour || c.SysInterval != 30*time.Second ||
		c.Limits.MaxQueued != 100 || c.Limits.MaxPacketSize != 65536 {
		t.Fatalf("decoded %+v", c)
	}
	if err := yaml.UnmarshalWithOptions([]byte("listen: x:1\nlisten_tcp: y\n"), &c, yaml.Strict()); err == nil {
		t.Fatal("unknown key accepted")
	}
}

// tls.client_ca: clients must present a certificate signed by that CA.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	crt := newCerts(t, dir, "mtls")
	cfg := baseConfig(t)
	cfg.TLS = &TLSConfig{Listen: "127.0.0.1:0", Cert: crt.certFile, Key: crt.keyFile, ClientCA: crt.caFile}
	b := start(t, cfg)
	addr := b.Addr(ListenerTLS)
	pair, err := tls.LoadX509KeyPair(crt.certFile, crt.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: crt.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatalf("TLS with a client certificate: %v", err)
	}
	if _, err := connectConn(t, conn, connOpts{clientID: "with-cert", user: "sensor1"}); err != nil {
		t.Fatal(err)
	}
	// Without a certificate the server aborts the handshake (with TLS 1.3 the client
	// learns it on its first read, so the MQTT connect fails).
	conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: crt.pool, ServerName: "127.0.0.1"})
	if err == nil {
		if _, err := connectConn(t, conn, connOpts{clientID: "no-cert", user: "sensor1"}); err == nil {
			t.Fatal("connected without a client certificate")
		}
	}
}

func TestCredentials(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	c := NewCredentials([]User{{Username: "ops", PasswordHash: h, Role: RoleClient}})
	for range 2 { // the second check is served by the cache
		if role, ok := c.Check("ops", "s3cret"); !ok || role != RoleClient {
			t.Fatalf("Check(ops, right) = %q, %v", role, ok)
		}
	}
	for _, bad := range [][2]string{{"ops", "wrong"}, {"ops", ""}, {"nobody", "s3cret"}, {"", ""}} {
		if role, ok := c.Check(bad[0], bad[1]); ok {
			t.Errorf("Check(%q, %q) accepted as %q", bad[0], bad[1], role)
		}
	}
}
