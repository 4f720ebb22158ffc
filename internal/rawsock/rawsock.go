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
// them; Close, deadlines and addresses stay c's. Unlike a net.Conn, it
// allows one Read and one Write at a time (each may run beside the other):
// their state lives in the Conn, so a call allocates nothing.
type Conn struct {
	net.Conn
	rc syscall.RawConn // nil: plain c

	rp      []byte
	rn      int
	rerrno  syscall.Errno
	readFn  func(fd uintptr) bool
	wp      []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// New wraps c, which should be a *net.UnixConn or *net.TCPConn.
func New(c net.Conn) *Conn {
	conn := &Conn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok && raw {
		if rc, err := sc.SyscallConn(); err == nil {
			conn.rc = rc
			conn.readFn = conn.read
			conn.writeFn = conn.write
		}
	}
	return conn
}

func (c *Conn) Read(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	c.rp, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rp = nil
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

// read is syscall.RawConn.Read's function: false waits in the poller until
// the socket is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		c.rn, c.rerrno = rawRead(fd, c.rp)
		switch c.rerrno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.rn, c.rerrno = 0, 0
			return false
		}
		return true
	}
}

func (c *Conn) Write(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.Conn.Write(p)
	}
	c.wp, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wp = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// write is syscall.RawConn.Write's function: false waits in the poller
// until the socket is writable.
func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		k, e := rawWrite(fd, c.wp[c.wn:])
		switch e {
		case 0:
			c.wn += k
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

func (c *Conn) opError(op string, err error) error {
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
