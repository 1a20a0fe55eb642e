package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Listener names, for Server.Addr.
const (
	ListenerTCP       = "tcp"
	ListenerTLS       = "tls"
	ListenerWebSocket = "ws"
)

// connTracker remembers the connections a listener accepted until the broker is done with
// them, so closing the listener also ends connections that never completed CONNECT.
type connTracker struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (t *connTracker) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.conns == nil {
		t.conns = map[net.Conn]struct{}{}
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *connTracker) remove(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// netListener serves MQTT over TCP or TLS. Unlike mochi's, it binds in Init (so the
// address is known, port 0 included) and gives a new connection connectTimeout to send
// CONNECT; afterwards the client's keepalive governs the deadline.
type netListener struct {
	id, address    string
	tls            *tls.Config
	connectTimeout time.Duration
	ln             net.Listener
	log            *slog.Logger
	conns          connTracker
	closeOnce      sync.Once
}

var _ listeners.Listener = (*netListener)(nil)

func (l *netListener) ID() string { return l.id }

func (l *netListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *netListener) Protocol() string {
	if l.tls != nil {
		return "mqtts"
	}
	return "mqtt"
}

func (l *netListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	ln = rawConns{ln}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

func (l *netListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.conns.add(conn) {
			_ = conn.Close()
			return
		}
		if l.connectTimeout > 0 {
			_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
		}
		go func() {
			defer l.conns.remove(conn)
			defer conn.Close()
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("mqtt connection ended", "error", err, "remote", conn.RemoteAddr().String())
			}
		}()
	}
}

func (l *netListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		if l.ln != nil {
			_ = l.ln.Close()
		}
		closeClients(l.id)
		l.conns.closeAll()
	})
}

// wsListener serves MQTT over WebSocket (subprotocol "mqtt", any path).
type wsListener struct {
	id, address    string
	connectTimeout time.Duration
	ln             net.Listener
	srv            *http.Server
	log            *slog.Logger
	establish      listeners.EstablishFn
	upgrader       websocket.Upgrader
	origins        []string // allowed cross-origin pages; "*" any
	conns          connTracker
	closeOnce      sync.Once
}

var _ listeners.Listener = (*wsListener)(nil)

func (l *wsListener) ID() string { return l.id }

func (l *wsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.ln = rawConns{ln} // net/http hands the upgraded connection over: MQTT reads it raw
	l.upgrader = websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: l.connectTimeout,
		CheckOrigin:      l.checkOrigin,
	}
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: l.connectTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return nil
}

// checkOrigin lets a browser page open a connection only from the listener's own origin or
// an allowed one: otherwise any web page the user visits could reach the broker (and, with
// anonymous access, publish to the devices). Non-browser clients send no Origin.
func (l *wsListener) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range l.origins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	l.log.Info("websocket connection from another origin refused (broker.websocket_origins)", "origin", origin, "remote", r.RemoteAddr)
	return false
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "error", err)
	}
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered with an HTTP error
	}
	conn := &wsConn{Conn: c.UnderlyingConn(), ws: c}
	if !l.conns.add(conn) {
		_ = conn.Close()
		return
	}
	defer l.conns.remove(conn)
	defer conn.Close()
	if l.connectTimeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
	}
	if err := l.establish(l.id, conn); err != nil {
		l.log.Debug("mqtt connection ended", "error", err, "remote", conn.RemoteAddr().String())
	}
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		if l.srv != nil {
			_ = l.srv.Close() // closes the listener; hijacked connections are ours
		}
		closeClients(l.id)
		l.conns.closeAll()
	})
}

// wsConn presents a WebSocket connection as the byte stream MQTT expects.
type wsConn struct {
	net.Conn // the underlying connection: addresses and deadlines
	ws       *websocket.Conn
	r        io.Reader // the current message
	wmu      sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
