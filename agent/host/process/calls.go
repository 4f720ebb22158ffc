package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/depai/depai/internal/rawsock"
	"github.com/depai/depai/sdk/wire"
)

// errConnLost is a call that ended because the call socket broke: the
// plugin died or closed it.
var errConnLost = errors.New("call socket closed")

// errAbandoned is a call whose context ended before its result came.
var errAbandoned = errors.New("call abandoned")

// readBuf is the call socket's read buffer; a frame larger than it grows
// the buffer for as long as it takes to read it.
const readBuf = 64 << 10

// reply is what a call gets back.
type reply struct {
	body []byte
	err  error
}

// callConn is the host end of the plugin's call socket (see
// wire.ProcessReady): a pool of connections, each carrying one call at a
// time. The caller writes its frame and reads the result on its own
// goroutine — there is no reader goroutine to hand results over, and the
// plugin runs the call on the goroutine that read it; each hand-off between
// goroutines woke another thread per call, about a pipe round trip apiece.
// A call that runs while all connections are busy opens another one.
type callConn struct {
	addr  string
	token []byte
	max   int // largest result body accepted

	mu   sync.Mutex
	next uint64
	idle []*callSock
	all  []*callSock
	err  error // set once a connection broke or the pool was closed
}

// callSock is one connection and its read state; one call uses it at a
// time.
type callSock struct {
	conn     net.Conn
	buf      []byte
	off, end int // buf[off:end] is read and not yet parsed
	skip     int // bytes of an oversized frame still to discard
	// dirty: a context's end set a read deadline that has to be cleared.
	dirty bool
	// body and frame are the last call's, kept for the next one.
	body, frame []byte
}

func dialCalls(addr, token string, max int) (*callConn, error) {
	c := &callConn{addr: addr, token: []byte(token), max: max}
	s, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.put(s)
	return c, nil
}

// dial opens a connection and says hello.
func (c *callConn) dial() (*callSock, error) {
	conn, err := net.Dial("unix", c.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to the call socket: %w", err)
	}
	if _, err := conn.Write(wire.AppendFrame(nil, wire.FrameHello, 0, c.token)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open a call connection: %w", err)
	}
	s := &callSock{conn: rawsock.New(conn), buf: make([]byte, readBuf)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		conn.Close()
		return nil, c.err
	}
	c.all = append(c.all, s)
	return s, nil
}

// get takes an idle connection, or opens one.
func (c *callConn) get() (*callSock, uint64, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, 0, c.err
	}
	c.next++
	id := c.next
	if n := len(c.idle); n > 0 {
		s := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return s, id, nil
	}
	c.mu.Unlock()
	s, err := c.dial()
	if err != nil {
		c.fail(errConnLost)
		return nil, 0, errConnLost
	}
	return s, id, nil
}

func (c *callConn) put(s *callSock) {
	c.mu.Lock()
	c.idle = append(c.idle, s)
	c.mu.Unlock()
}

// roundTrip sends one call frame and waits for its result. A call whose
// ctx ends first is abandoned (the plugin is told to cancel it) and
// answered errAbandoned.
func (c *callConn) roundTrip(ctx context.Context, call wire.Call) reply {
	s, id, err := c.get()
	if err != nil {
		return reply{err: err}
	}
	s.body = wire.AppendCallBody(s.body[:0], call)
	s.frame = wire.AppendFrame(s.frame[:0], wire.FrameCall, id, s.body)
	_, err = s.conn.Write(s.frame)
	if cap(s.frame) > readBuf {
		s.body, s.frame = nil, nil // keep no large call's buffers
	}
	if err != nil {
		c.fail(errConnLost)
		return reply{err: errConnLost}
	}
	rep, done := c.await(ctx, s, id)
	if done {
		if rep.err == nil || errors.Is(rep.err, wire.ErrFrameTooLarge) {
			c.put(s)
		}
		return rep
	}
	// Its result still comes on s; read it off before s carries another
	// call. The plugin ends a handler that overstays (HangGrace), and its
	// death closes s.
	go func() {
		if rep, _ := c.await(context.Background(), s, id); rep.err == nil || errors.Is(rep.err, wire.ErrFrameTooLarge) {
			c.put(s)
		}
	}()
	c.cancel(id)
	return reply{err: errAbandoned}
}

// cancel tells the plugin to cancel call id, on a connection other than
// the call's own, whose reader is running it.
func (c *callConn) cancel(id uint64) {
	s, _, err := c.get()
	if err != nil {
		return
	}
	if _, err := s.conn.Write(wire.AppendFrame(nil, wire.FrameCancel, id, nil)); err != nil {
		c.fail(errConnLost)
		return
	}
	c.put(s)
}

// await reads s until call id's result comes (done) or ctx ends (not
// done).
func (c *callConn) await(ctx context.Context, s *callSock, id uint64) (rep reply, done bool) {
	if s.dirty {
		_ = s.conn.SetReadDeadline(time.Time{})
		s.dirty = false
	}
	// A read blocks until a frame comes; ctx ending interrupts it. The
	// frame it was in the middle of stays buffered for the next read.
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			s.dirty = true
		}
	}()
	for {
		kind, fid, body, err := s.readFrame(c.max)
		switch {
		case errors.Is(err, wire.ErrFrameTooLarge):
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return reply{}, false
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Set by an earlier caller's context after it was done with s.
			_ = s.conn.SetReadDeadline(time.Time{})
			continue
		case err != nil:
			c.fail(errConnLost)
			return reply{err: errConnLost}, true
		}
		if kind == wire.FrameResult && fid == id {
			return reply{body: body, err: err}, true
		}
	}
}

// readFrame returns the next whole frame from the socket. A read that fails
// (a deadline, a closed socket) keeps what it had read, so the next call
// resumes in the middle of the frame. A frame over max is reported as
// wire.ErrFrameTooLarge with its kind and id, and skipped.
func (c *callSock) readFrame(max int) (kind byte, id uint64, body []byte, err error) {
	for {
		if c.skip > 0 {
			n := min(c.skip, c.end-c.off)
			c.off += n
			c.skip -= n
		}
		need := 1 // while skipping: any bytes
		if c.skip == 0 {
			need = wire.FrameHeaderLen
			if h := c.buf[c.off:c.end]; len(h) >= wire.FrameHeaderLen {
				kind, id, n, err := wire.ParseFrameHeader(h, max)
				switch {
				case errors.Is(err, wire.ErrFrameTooLarge):
					c.off += wire.FrameHeaderLen
					c.skip = int(n)
					return kind, id, nil, err
				case err != nil:
					return 0, 0, nil, err
				case int64(len(h)) >= wire.FrameHeaderLen+n:
					body = append([]byte(nil), h[wire.FrameHeaderLen:wire.FrameHeaderLen+n]...)
					c.off += wire.FrameHeaderLen + int(n)
					return kind, id, body, nil
				}
				need = wire.FrameHeaderLen + int(n)
			}
		}
		if c.off == c.end {
			c.off, c.end = 0, 0
			if len(c.buf) > readBuf && need <= readBuf {
				c.buf = make([]byte, readBuf) // a large frame is done with
			}
		}
		if len(c.buf)-c.off < need {
			buf := c.buf
			if need > len(buf) {
				buf = make([]byte, need)
			}
			c.end = copy(buf, c.buf[c.off:c.end])
			c.off, c.buf = 0, buf
		}
		n, err := c.conn.Read(c.buf[c.end:])
		c.end += n
		if err != nil && n == 0 {
			return 0, 0, nil, err
		}
	}
}

// fail marks the pool broken and closes every connection: callers reading
// one get an error at once.
func (c *callConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for _, s := range c.all {
		_ = s.conn.Close()
	}
	c.idle = nil
}

func (c *callConn) close() { c.fail(errConnLost) }
