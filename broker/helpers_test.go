package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"
)

// deadline bounds every wait in these tests; it is a failure deadline, not a timing assertion.
const deadline = 20 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	t.Cleanup(cancel)
	return ctx
}

// testUsers are the accounts of most tests; every password is "pw-" + username.
var testUsers = []struct {
	name string
	role Role
}{
	{"sensor1", RoleDevice},
	{"a1", RoleAgent},
	{"a2", RoleAgent},
	{"nodered", RoleClient},
	{"dash", RoleClient},
	{"root", RoleAdmin},
}

var (
	hashOnce  sync.Once
	hashCache map[string]string
)

func usersConfig(t testing.TB) []User {
	hashOnce.Do(func() {
		hashCache = map[string]string{}
		for _, u := range testUsers {
			h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u.name), bcrypt.MinCost)
			if err != nil {
				panic(err)
			}
			hashCache[u.name] = string(h)
		}
	})
	var us []User
	for _, u := range testUsers {
		us = append(us, User{Username: u.name, PasswordHash: hashCache[u.name], Role: u.role})
	}
	return us
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BROKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// baseConfig listens on free loopback ports with the test users.
func baseConfig(t testing.TB) Config {
	return Config{
		Listen: "127.0.0.1:0",
		Users:  usersConfig(t),
	}
}

// running is a started broker.
type running struct {
	*Server
	stop func() // cancels Run and waits for it to return
}

// start runs a broker until the test ends (or stop is called).
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	srv, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return startServer(t, srv)
}

func startServer(t testing.TB, srv *Server) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(deadline):
		cancel()
		t.Fatal("broker not ready")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(deadline):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &running{Server: srv, stop: stop}
}

// client is a paho MQTT client with its received messages.
type client struct {
	*paho.Client
	msgs    chan *paho.Publish
	connack *paho.Connack
}

type connOpts struct {
	clientID   string
	user       string // "" = no username
	password   string // default "pw-" + user
	v3         bool
	keepalive  uint16
	persistent bool // clean start false, session expiry 1h
	will       *paho.WillMessage
}

// dialTCP opens a TCP connection to the broker's listener.
func dialTCP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// connect connects a paho client over conn; it returns the client and the connect error.
func connectConn(t testing.TB, conn net.Conn, o connOpts) (*client, error) {
	t.Helper()
	c := &client{msgs: make(chan *paho.Publish, 10000)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case c.msgs <- pr.Packet:
				default:
					t.Errorf("client %s: receive buffer full", o.clientID)
				}
				return true, nil
			},
		},
	})
	cp := &paho.Connect{
		ClientID:   o.clientID,
		KeepAlive:  o.keepalive,
		CleanStart: !o.persistent,
	}
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	if o.user != "" {
		cp.Username, cp.UsernameFlag = o.user, true
		pw := o.password
		if pw == "" {
			pw = "pw-" + o.user
		}
		cp.Password, cp.PasswordFlag = []byte(pw), true
	}
	if o.persistent {
		exp := uint32(3600)
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &exp}
	}
	if o.will != nil {
		cp.WillMessage = o.will
		cp.WillProperties = &paho.WillProperties{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.connack = ca
	if err != nil {
		_ = conn.Close()
		return c, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

// mustConnect connects a paho client over TCP or fails the test.
func mustConnect(t testing.TB, addr string, o connOpts) *client {
	t.Helper()
	c, err := connectConn(t, dialTCP(t, addr), o)
	if err != nil {
		t.Fatalf("connect %s as %q: %v", o.clientID, o.user, err)
	}
	return c
}

func (c *client) subscribe(t testing.TB, filter string, qos byte) (*paho.Suback, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
}

func (c *client) mustSubscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	if _, err := c.subscribe(t, filter, qos); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
}

func (c *client) publish(t testing.TB, topic string, payload []byte, qos byte, retain bool) (*paho.PublishResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
}

func (c *client) mustPublish(t testing.TB, topic, payload string, qos byte) {
	t.Helper()
	if _, err := c.publish(t, topic, []byte(payload), qos, false); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
}

// next waits for the next message.
func (c *client) next(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(deadline):
		t.Fatal("no message received")
		return nil
	}
}

// expect waits for the next message and checks its topic and payload.
func (c *client) expect(t testing.TB, topic, payload string) {
	t.Helper()
	m := c.next(t)
	if m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("received %q %q, want %q %q", m.Topic, m.Payload, topic, payload)
	}
}

// waitDone waits until the broker has closed the client's connection.
func (c *client) waitDone(t testing.TB) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(deadline):
		t.Fatal("connection not closed by the broker")
	}
}

// requireTool returns the path of a command-line tool; a missing tool fails the test
// (scripts/setup.sh installs them), it never skips.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/usr/bin/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: run `go tool task setup` (scripts/setup.sh) to install mosquitto and mosquitto-clients", name)
	return ""
}

// mosquitto runs a mosquitto client tool and returns its combined output and exit error.
func mosquitto(t testing.TB, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, tool), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: did not finish: %s", tool, args, out.String())
	}
	return out.String(), err
}

func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// certs is a CA and a server certificate for 127.0.0.1, written as PEM files.
type certs struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func newCerts(t testing.TB, dir, name string) certs {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := certs{
		caFile:   filepath.Join(dir, name+"-ca.pem"),
		certFile: filepath.Join(dir, name+"-cert.pem"),
		keyFile:  filepath.Join(dir, name+"-key.pem"),
		pool:     x509.NewCertPool(),
	}
	c.pool.AddCert(caCert)
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(c.caFile, "CERTIFICATE", caDER)
	write(c.certFile, "CERTIFICATE", der)
	write(c.keyFile, "EC PRIVATE KEY", keyDER)
	return c
}

func dialWS(t testing.TB, addr string) net.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: deadline}
	ws, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", addr, err)
	}
	return &wsConn{Conn: ws.UnderlyingConn(), ws: ws} // the listener's adapter works on the client side too
}

func itoa(i int) string { return strconv.Itoa(i) }

// waitFor polls cond until it holds, failing the test after the deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	stop := time.After(deadline)
	for !cond() {
		select {
		case <-stop:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
