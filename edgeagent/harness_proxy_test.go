package edgeagent

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP (or unix) connections to a target and can cut them, standing in for a
// broker or a podman service that goes away and comes back.
type proxy struct {
	network, target string
	l               net.Listener
	mu              sync.Mutex
	up              bool
	conns           []net.Conn
}

func newProxy(t testing.TB, network, listen, target string) *proxy {
	t.Helper()
	l, err := net.Listen(network, listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{network: network, target: target, l: l, up: true}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.setUp(false) })
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if !up {
			c.Close()
			continue
		}
		up2, err := net.Dial(p.network, p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up2)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up2, c); up2.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up2); up2.Close(); c.Close() }()
	}
}

// setUp(false) drops every connection and refuses new ones until setUp(true).
func (p *proxy) setUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}
