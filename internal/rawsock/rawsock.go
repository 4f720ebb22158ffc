// Package rawsock reads and writes a non-blocking socket without the Go
// runtime's system-call bookkeeping, for the process-plugin call socket.
//
// A net.Conn read or write goes through entersyscall, which wakes the
// runtime's sysmon thread when it had gone to sleep because every P was
// idle — and between two calls of a plugin, every P of both processes is
// idle. That wake-up is another thread put on a CPU per call on each side.
// A read or write of a non-blocking socket never blocks, so it can be a raw
// system call; waiting for the socket still goes through the runtime's
// network poller (syscall.RawConn), deadlines and Close included.
package rawsock

import (
	"io"
	"net"
	"syscall"
)

// Conn reads and writes c with raw system calls where the platform has
// them; Close, deadlines and addresses stay c's.
type Conn struct {
	net.Conn
	rc syscall.RawConn // nil: plain c
}

// New wraps c, which should be a *net.UnixConn or *net.TCPConn.
func New(c net.Conn) *Conn {
	conn := &Conn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok && raw {
		if rc, err := sc.SyscallConn(); err == nil {
			conn.rc = rc
		}
	}
	return conn
}

func (c *Conn) Read(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(fd, p)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller until readable
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) Write(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.Conn.Write(p)
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			k, e := rawWrite(fd, p[n:])
			switch e {
			case 0:
				n += k
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait in the poller until writable
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *Conn) opError(op string, err error) error {
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
