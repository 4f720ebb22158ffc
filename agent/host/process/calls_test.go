package process

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

func callConnOf(t *testing.T, in host.Instance) *callConn {
	t.Helper()
	i := in.(*instance)
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cur == nil {
		t.Fatal("no live process")
	}
	return i.cur.calls
}

func (c *callConn) counts() (idle, all int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle), len(c.all)
}

// Each connection carries one call, run on the plugin goroutine that read
// it: concurrent calls take their own connections and run side by side, and
// a quick call is not stuck behind slow ones.
func TestConcurrentCallsRunSideBySide(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{Limits: host.Limits{Concurrency: 4}})
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if res := call(t, in, "sleep", "600ms"); res.Error != nil {
				t.Errorf("sleep: %v", res.Error)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	if res := call(t, in, "echo", "x"); res.Error != nil || string(res.Payload) != `"x"` {
		t.Fatalf("echo beside the sleeps = %s, %v", res.Payload, res.Error)
	}
	if d := time.Since(t0); d > 400*time.Millisecond {
		t.Errorf("echo took %v beside three sleeping calls; it waited for them", d)
	}
	wg.Wait()
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("three 600ms calls took %v: they ran one after another", d)
	}
	idle, all := callConnOf(t, in).counts()
	if all != 4 || idle != 4 {
		t.Errorf("connections: %d idle of %d; want 4 of 4 (three sleeps and the echo)", idle, all)
	}
}

// A call abandoned by its caller is canceled in the plugin — the cancel
// goes on another connection, since the call's own is busy running it —
// and its connection comes back to the pool once the handler returned.
func TestAbandonedCallIsCanceledInPlugin(t *testing.T) {
	rec := newRecorder()
	in := load(t, testConfig(rec), host.LoadSpec{})
	c := callConnOf(t, in)
	// Canceled, not timed out: the plugin's own copy of the deadline is far
	// off, so only the cancel frame can end the handler early.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if res := callCtx(t, ctx, in, "sleep", "20s"); res.Error == nil || res.Error.Code != wire.CodeUnavailable || !strings.Contains(res.Error.Message, "canceled") {
		t.Fatalf("canceled sleep = %+v; want unavailable, canceled", res.Error)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		idle, all := c.counts()
		if idle == all && all == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections: %d idle of %d; the canceled call's connection did not come back", idle, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res := call(t, in, "echo", "after"); res.Error != nil || string(res.Payload) != `"after"` {
		t.Fatalf("echo after the abandoned call = %s, %v", res.Payload, res.Error)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, r := range *rec.recs {
		if strings.Contains(r, "still running") {
			t.Fatalf("the handler ignored its cancel until the hang watchdog: %s", r)
		}
	}
}

// Only the host, which learned the token at Init, can call the plugin
// through its call socket.
func TestCallSocketRefusesWithoutToken(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{})
	addr := callConnOf(t, in).addr
	for name, hello := range map[string][]byte{
		"wrong token": wire.AppendFrame(nil, wire.FrameHello, 0, bytes.Repeat([]byte("0"), 32)),
		"no hello":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("unix", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			frame := append(hello, wire.AppendFrame(nil, wire.FrameCall, 1, []byte(`{"method":"pid","call_id":"x"}`))...)
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.ReadAll(conn)
			if len(n) != 0 || err != nil {
				t.Fatalf("read %q, %v; want the connection closed with no answer", n, err)
			}
		})
	}
	if res := call(t, in, "echo", "still"); res.Error != nil {
		t.Fatalf("the host's own calls after refused connections: %v", res.Error)
	}
}

// chunkConn replays a byte stream to callSock.readFrame in the chunks it is
// given, failing with a deadline error between chunks where asked: what a
// read interrupted by a caller's context looks like.
type chunkConn struct {
	net.Conn
	chunks [][]byte
	fail   []bool
}

func (c *chunkConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 {
		if c.fail[0] {
			c.fail[0] = false
			return 0, os.ErrDeadlineExceeded
		}
		n := copy(p, c.chunks[0])
		c.chunks[0] = c.chunks[0][n:]
		if len(c.chunks[0]) == 0 {
			c.chunks, c.fail = c.chunks[1:], c.fail[1:]
		}
		return n, nil
	}
	return 0, io.EOF
}

// FuzzCallSockReadFrame checks the host's resumable frame reader against
// wire.ReadFrame on the same stream, cut into chunks with interrupted reads
// between them.
func FuzzCallSockReadFrame(f *testing.F) {
	two := append(wire.AppendFrame(nil, wire.FrameResult, 7, []byte(`{"payload":1}`)), wire.AppendFrame(nil, wire.FrameResult, 8, nil)...)
	f.Add(two, []byte{3, 1, 20, 0, 200})
	f.Add(wire.AppendFrame(nil, wire.FrameResult, 1, bytes.Repeat([]byte("x"), 300)), []byte{1, 5, 250})
	f.Add([]byte{0, 0, 0, 3, 2, 0}, []byte{2})
	f.Add(append(wire.AppendFrame(nil, wire.FrameResult, 2, bytes.Repeat([]byte("y"), 100)), two...), []byte{0, 13, 40})
	f.Add([]byte("0000000000000"), []byte("0")) // a header of an 800 MB body, then the end of the stream
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		const max = 64
		var want []string
		r := bytes.NewReader(stream)
		for {
			at := len(stream) - r.Len()
			kind, id, body, err := wire.ReadFrame(r, max)
			if err != nil && !errors.Is(err, wire.ErrFrameTooLarge) {
				// A stream that ends inside a frame too large: wire.ReadFrame
				// reports the end once it has tried to skip the body, the
				// resumable reader the size as soon as it has the header.
				if rest := stream[at:]; len(rest) >= wire.FrameHeaderLen {
					if k, i, _, herr := wire.ParseFrameHeader(rest[:wire.FrameHeaderLen], max); errors.Is(herr, wire.ErrFrameTooLarge) {
						want = append(want, frameString(k, i, nil, herr))
					}
				}
				break
			}
			want = append(want, frameString(kind, id, body, err))
		}
		conn := &chunkConn{}
		rest := stream
		for i, cut := range cuts {
			n := min(int(cut), len(rest))
			conn.chunks = append(conn.chunks, rest[:n])
			conn.fail = append(conn.fail, i%2 == 1)
			rest = rest[n:]
		}
		conn.chunks, conn.fail = append(conn.chunks, rest), append(conn.fail, false)
		s := &callSock{conn: conn, buf: make([]byte, 16)} // small, so frames grow it
		var got []string
		for len(got) <= len(want) {
			kind, id, body, err := s.readFrame(max)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil && !errors.Is(err, wire.ErrFrameTooLarge) {
				break
			}
			got = append(got, frameString(kind, id, body, err))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("resumable reader:\n%s\nwire.ReadFrame:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func frameString(kind byte, id uint64, body []byte, err error) string {
	if err != nil {
		return string(rune('0'+kind)) + " " + string(rune('0'+id%10)) + " too large"
	}
	return string(rune('0'+kind)) + " " + string(rune('0'+id%10)) + " " + string(body)
}
