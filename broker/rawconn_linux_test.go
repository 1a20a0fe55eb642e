package broker

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawPair is an accepted rawConn and the client end of its connection.
func rawPair(t *testing.T) (*rawConn, net.Conn) {
	t.Helper()
	l := &netListener{id: "t", address: "127.0.0.1:0"}
	if err := l.Init(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.ln.Close() })
	client, err := net.Dial("tcp", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	c, err := l.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rc, ok := c.(*rawConn)
	if !ok {
		t.Fatalf("the broker's listener accepted a %T, want *rawConn", c)
	}
	return rc, client
}

// The broker's TCP connections read and write with raw system calls: the bytes, the
// end of stream, deadlines and closing must be what a *net.TCPConn gives.
func TestRawConnIsATCPConn(t *testing.T) {
	t.Parallel()
	t.Run("bytes both ways, larger than the socket buffers", func(t *testing.T) {
		t.Parallel()
		c, client := rawPair(t)
		in, out := make([]byte, 8<<20), make([]byte, 8<<20)
		_, _ = rand.Read(in)
		_, _ = rand.Read(out)
		// The client sends in; the server echoes nothing back until it has read it all,
		// then writes out, which the client reads slowly so that writes meet a full
		// socket buffer (EAGAIN, partial writes).
		sent := make(chan error, 1)
		go func() { _, err := client.Write(in); sent <- err }()
		got := make([]byte, len(in))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, in) {
			t.Fatal("the server read other bytes than the client wrote")
		}
		wrote := make(chan error, 1)
		go func() {
			n, err := c.Write(out)
			if err == nil && n != len(out) {
				err = io.ErrShortWrite
			}
			wrote <- err
		}()
		back := make([]byte, 0, len(out))
		buf := make([]byte, 4096)
		for len(back) < len(out) {
			n, err := client.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			back = append(back, buf[:n]...)
			if len(back) < 1<<20 {
				time.Sleep(50 * time.Microsecond)
			}
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, out) {
			t.Fatal("the client read other bytes than the server wrote")
		}
		if n, err := c.Read(nil); n != 0 || err != nil {
			t.Fatalf("a read into no buffer: %d, %v; want 0, nil", n, err)
		}
	})
	t.Run("end of stream", func(t *testing.T) {
		t.Parallel()
		c, client := rawPair(t)
		if _, err := client.Write([]byte("last")); err != nil {
			t.Fatal(err)
		}
		_ = client.Close()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "last" {
			t.Fatalf("read %q, %v; want \"last\" then io.EOF", got, err)
		}
		if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("a read after the end: %d, %v; want 0, io.EOF", n, err)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		t.Parallel()
		c, _ := rawPair(t)
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 8))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a read past its deadline: %v; want a timeout", err)
		}
	})
	t.Run("write deadline with a peer that does not read", func(t *testing.T) {
		t.Parallel()
		c, _ := rawPair(t)
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		big := make([]byte, 64<<20)
		n, err := c.Write(big)
		if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(big) {
			t.Fatalf("a write past its deadline: %d of %d bytes, %v; want part of them and a timeout", n, len(big), err)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		t.Parallel()
		c, _ := rawPair(t)
		done := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 8)); done <- err }()
		time.Sleep(20 * time.Millisecond)
		_ = c.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("a read on a closed connection: %v; want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a read blocked after its connection was closed")
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a write on a closed connection: %v; want net.ErrClosed", err)
		}
	})
	t.Run("reset by the peer", func(t *testing.T) {
		t.Parallel()
		c, client := rawPair(t)
		_ = client.(*net.TCPConn).SetLinger(0) // close sends RST
		_ = client.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var err error
		for err == nil {
			_, err = c.Read(make([]byte, 8))
		}
		var op *net.OpError
		if err != io.EOF && !errors.As(err, &op) {
			t.Fatalf("a read after a reset: %v (%T); want an *net.OpError", err, err)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the reset was not seen before the deadline")
		}
	})
}

// MQTT over WebSocket reads the upgraded connection, which must be a rawConn too.
func TestWebSocketConnIsRaw(t *testing.T) {
	t.Parallel()
	l := &wsListener{id: "ws", address: "127.0.0.1:0"}
	if err := l.Init(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go l.Serve(func(_ string, c net.Conn) error {
		buf := make([]byte, 5)
		_, err := io.ReadFull(c, buf)
		under := "not a *wsConn"
		if ws, ok := c.(*wsConn); ok {
			under = fmt.Sprintf("%T %q %v", ws.Conn, buf, err)
		}
		got <- under
		return nil
	})
	t.Cleanup(func() { l.Close(func(string) {}) })
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial("ws://"+l.ln.Addr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if want := `*broker.rawConn "hello" <nil>`; s != want {
			t.Fatalf("the upgraded connection: %s, want %s", s, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never handed the connection over")
	}
}
