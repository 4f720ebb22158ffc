package process

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/depai/depai/sdk/wire"
)

// errConnLost is a call that ended because the call socket broke: the
// plugin died or closed it.
var errConnLost = errors.New("call socket closed")

// reply is what the reader hands a waiting call.
type reply struct {
	body []byte
	err  error
}

// callConn multiplexes calls over the plugin's call socket (see
// wire.ProcessReady): callers write their frame themselves and one reader
// goroutine routes result frames back by id.
type callConn struct {
	conn net.Conn
	max  int // largest result body accepted

	wmu sync.Mutex // one frame at a time

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan reply
	err     error // set when the reader stopped
}

func dialCalls(addr string, max int) (*callConn, error) {
	conn, err := net.Dial("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to the call socket: %w", err)
	}
	c := &callConn{conn: conn, max: max, pending: map[uint64]chan reply{}}
	go c.read()
	return c, nil
}

func (c *callConn) read() {
	r := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		kind, id, body, err := wire.ReadFrame(r, c.max)
		if err != nil && !errors.Is(err, wire.ErrFrameTooLarge) {
			c.fail(errConnLost)
			return
		}
		if kind != wire.FrameResult {
			continue
		}
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- reply{body: body, err: err}
		}
	}
}

func (c *callConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for id, ch := range c.pending {
		ch <- reply{err: err}
		delete(c.pending, id)
	}
}

// send registers a call and writes its frame; the reply arrives on the
// returned channel.
func (c *callConn) send(body []byte) (uint64, chan reply, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, nil, c.err
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.write(wire.AppendFrame(make([]byte, 0, 13+len(body)), wire.FrameCall, id, body)); err != nil {
		c.fail(errConnLost)
		return 0, nil, errConnLost
	}
	return id, ch, nil
}

// abandon forgets a call whose caller gave up and tells the plugin to
// cancel it.
func (c *callConn) abandon(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
	_ = c.write(wire.AppendFrame(nil, wire.FrameCancel, id, nil))
}

func (c *callConn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(frame)
	return err
}

func (c *callConn) close() { _ = c.conn.Close() }
