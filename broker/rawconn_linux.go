package broker

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn is an accepted TCP connection whose reads and writes are raw non-blocking
// system calls made inside the runtime's poller (syscall.RawConn): they cannot block, so
// they skip entersyscall. That matters at the edge's usual pace, events that each find the
// engine idle: Go's sysmon sleeps while every P is idle, and the first blocking-style
// system call afterwards wakes it and resets it to polling every 20 µs, so every burst
// cost dozens of sysmon wake-ups (10 % of the engine's CPU at 10k events/s). Waiting for
// readiness, deadlines and closing stay the net package's.
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// rawConns is a listener whose TCP connections are rawConns.
type rawConns struct{ net.Listener }

func (l rawConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &rawConn{TCPConn: tc, rc: rc}, nil
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller, then call again
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawConn) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	}
	return n, nil
}
