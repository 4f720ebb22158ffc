// Package session keeps one NTRIP correction stream up — connect, frame,
// count, forward to a sink, reconnect with backoff — and holds what
// ntrip.status shows: link state, bytes and bytes/s, frames by message
// type, refusals by kind, the age of the newest correction, the base
// station's position and the rover's distance to it.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/depai/depai/plugins/internal/backoff"
	"github.com/depai/depai/plugins/internal/recording"
	"github.com/depai/depai/plugins/ntrip/internal/ntrip"
	"github.com/depai/depai/plugins/ntrip/internal/rtcm"
)

// Status is ntrip.status's answer.
type Status struct {
	Caster       string         `json:"caster"`
	Mount        string         `json:"mount"`
	Connected    bool           `json:"connected"`
	Reconnects   int            `json:"reconnects" jsonschema:"links lost since start"`
	Bytes        int64          `json:"bytes"`
	BytesPerSec  float64        `json:"bytes_per_s" jsonschema:"over the last ~10 s"`
	Frames       int            `json:"frames"`
	ByType       map[string]int `json:"by_type,omitempty" jsonschema:"frames by RTCM message number"`
	Bad          int            `json:"bad"`
	BadByKind    map[string]int `json:"bad_by_kind,omitempty" jsonschema:"refusals: crc, length, garbage, decode"`
	Age          *float64       `json:"age,omitempty" jsonschema:"seconds since the newest good frame"`
	LastFrameAt  *time.Time     `json:"last_frame_at,omitempty"`
	LastError    string         `json:"last_error,omitempty"`
	LastErrorAt  *time.Time     `json:"last_error_at,omitempty"`
	Station      *rtcm.Station  `json:"station,omitempty" jsonschema:"the base's antenna position from 1005/1006"`
	BaseDistance *float64       `json:"base_distance,omitempty" jsonschema:"metres from the configured rover position to the base"`
	GGASent      int            `json:"gga_sent"`
	Sink         string         `json:"sink,omitempty"`
	SinkBytes    int64          `json:"sink_bytes"`
	SinkErrors   int            `json:"sink_errors"`
	SinkError    string         `json:"sink_error,omitempty"`
}

// Rover is the rover's position: it goes up as GGA and is what the distance
// to the base is measured from. Zero Set means unknown.
type Rover struct {
	Lat, Lon, Alt float64
	Set           bool
}

// State is one session's counters, shared by its reader and the tools. Its
// lock guards everything below and is never held while doing I/O.
type State struct {
	mu       sync.Mutex
	st       Status
	rover    Rover
	winStart time.Time
	winBytes int64
	lastRate float64 // bytes/s over the previous window
}

// NewState returns the state of a session with cfg.
func NewState(caster, mount, sink string, rover Rover) *State {
	return &State{st: Status{Caster: caster, Mount: mount, Sink: sink}, rover: rover}
}

// Status is a copy of the counters at now.
func (s *State) Status(now time.Time) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.ByType, st.BadByKind = clone(s.st.ByType), clone(s.st.BadByKind)
	if st.LastFrameAt != nil {
		a := now.Sub(*st.LastFrameAt).Seconds()
		st.Age = &a
	}
	// The current window, once it is long enough to mean something;
	// before that, the window before it.
	if el := now.Sub(s.winStart).Seconds(); el >= 1 && !s.winStart.IsZero() {
		st.BytesPerSec = float64(s.st.Bytes-s.winBytes) / el
	} else {
		st.BytesPerSec = s.lastRate
	}
	return st
}

func clone(m map[string]int) map[string]int {
	if m == nil {
		return nil
	}
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (s *State) bytes(n int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := now.Sub(s.winStart); s.winStart.IsZero() || el > 10*time.Second {
		if !s.winStart.IsZero() {
			s.lastRate = float64(s.st.Bytes-s.winBytes) / el.Seconds()
		}
		s.winStart, s.winBytes = now, s.st.Bytes
	}
	s.st.Bytes += int64(n)
}

// Frame counts one result of rtcm.Frames; good frames of types 1005/1006
// update the station.
func (s *State) Frame(f rtcm.Frame, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.refuse(string(rtcm.KindOf(err)), err, now)
		return
	}
	switch {
	case f.Type == 1005 || f.Type == 1006:
		st, derr := rtcm.DecodeStation(f.Payload)
		if derr != nil {
			s.refuse("decode", derr, now)
			return
		}
		s.st.Station = &st
		if s.rover.Set {
			d := rtcm.Distance(s.rover.Lat, s.rover.Lon, s.rover.Alt, st.Lat, st.Lon, st.Alt)
			s.st.BaseDistance = &d
		}
	case rtcm.IsMSM(f.Type):
		if _, derr := rtcm.DecodeMSM(f.Payload); derr != nil {
			s.refuse("decode", derr, now)
			return
		}
	}
	s.st.Frames++
	if s.st.ByType == nil {
		s.st.ByType = map[string]int{}
	}
	s.st.ByType[strconv.Itoa(f.Type)]++
	s.st.LastFrameAt = &now
	s.st.Connected = true
}

func (s *State) refuse(kind string, err error, now time.Time) {
	s.st.Bad++
	if s.st.BadByKind == nil {
		s.st.BadByKind = map[string]int{}
	}
	s.st.BadByKind[kind]++
	s.st.LastError, s.st.LastErrorAt = err.Error(), &now
}

func (s *State) linkLost(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Connected {
		s.st.Reconnects++
	}
	s.st.Connected = false
	s.st.LastError, s.st.LastErrorAt = err.Error(), &now
}

func (s *State) connected(gga int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Connected = true
	s.st.GGASent = gga
}

func (s *State) sunk(n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.SinkBytes += int64(n)
	if err != nil {
		s.st.SinkErrors++
		s.st.SinkError = err.Error()
	}
}

// Config is a session: the caster, the rover, where corrections go.
type Config struct {
	NTRIP ntrip.Config
	Rover Rover
	Sink  io.Writer // nil: corrections are only counted
	// Backoff paces reconnects; a 401 waits the maximum at once, since
	// retrying a refused password quickly only gets the account locked.
	Backoff backoff.Backoff
	// Open, if set, replaces the caster as the byte source (a replayed
	// recording); each time its stream ends it is opened again.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Record, if set, records the source's bytes as they arrive.
	Record *recording.Writer
}

// Run keeps the stream up until ctx ends. If cfg.Rover is set, its GGA is
// uploaded.
func Run(ctx context.Context, cfg Config, st *State) {
	b := cfg.Backoff
	for ctx.Err() == nil {
		s, err := open(ctx, cfg)
		if err != nil {
			st.linkLost(err, time.Now())
			wait := b.Next()
			if se, ok := errors.AsType[*ntrip.StatusError](err); ok && se.Code == 401 {
				wait = max(wait, b.Max)
			}
			if !backoff.Sleep(ctx, wait) {
				return
			}
			continue
		}
		stop := context.AfterFunc(ctx, func() { s.Close() })
		st.connected(ggaSent(s))
		var in io.Reader = s
		if cfg.Record != nil {
			in = recording.Tee(s, cfg.Record, time.Now)
		}
		err = pump(in, s, cfg.Sink, st, &b)
		stop()
		s.Close()
		if ctx.Err() != nil {
			return
		}
		st.linkLost(err, time.Now())
		if !backoff.Sleep(ctx, b.Next()) {
			return
		}
	}
}

func open(ctx context.Context, cfg Config) (io.ReadCloser, error) {
	if cfg.Open != nil {
		return cfg.Open(ctx)
	}
	nc := cfg.NTRIP
	if cfg.Rover.Set {
		nc.GGA = GGA(cfg.Rover, time.Now())
	}
	return ntrip.Connect(ctx, nc)
}

func ggaSent(s io.Reader) int {
	if ns, ok := s.(*ntrip.Stream); ok {
		n, _ := ns.GGASent()
		return n
	}
	return 0
}

// pump frames in (src, perhaps recorded) into st and the sink until it
// fails.
func pump(in io.Reader, src io.Reader, sink io.Writer, st *State, b *backoff.Backoff) error {
	r := countingReader{r: in, st: st}
	for f, err := range rtcm.Frames(&r) {
		if err != nil && rtcm.KindOf(err) == "" {
			return err
		}
		st.Frame(f, err, time.Now())
		if err != nil {
			continue
		}
		b.Reset()
		if sink != nil {
			n, werr := sink.Write(f.Raw)
			st.sunk(n, werr)
		}
		if n := ggaSent(src); n > 0 {
			st.mu.Lock()
			st.st.GGASent = n
			st.mu.Unlock()
		}
	}
	return io.EOF
}

type countingReader struct {
	r  io.Reader
	st *State
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.st.bytes(n, time.Now())
	}
	return n, err
}

// GGA is the rover's position as an NMEA GGA sentence at t (quality 1, as
// casters expect from a rover asking for corrections).
func GGA(r Rover, t time.Time) string {
	t = t.UTC()
	dm := func(x float64, w int) (string, bool) {
		neg := x < 0
		a := math.Abs(x)
		d := math.Floor(a)
		m := (a - d) * 60
		if m >= 59.99995 { // rounding would print 60.0000
			d, m = d+1, 0
		}
		return fmt.Sprintf("%0*d%07.4f", w, int(d), m), neg
	}
	lat, s := dm(r.Lat, 2)
	lon, w := dm(r.Lon, 3)
	ns, ew := "N", "E"
	if s {
		ns = "S"
	}
	if w {
		ew = "W"
	}
	body := fmt.Sprintf("GPGGA,%02d%02d%02d.00,%s,%s,%s,%s,1,12,1.0,%.1f,M,0.0,M,,", t.Hour(), t.Minute(), t.Second(), lat, ns, lon, ew, r.Alt)
	var c byte
	for i := 0; i < len(body); i++ {
		c ^= body[i]
	}
	return fmt.Sprintf("$%s*%02X", body, c)
}

// TCPSink forwards corrections to a TCP peer (a receiver's correction
// port, gpsd, an RTK engine). A failed write drops the connection; the next
// write redials, at most once a second, so a missing peer costs nothing
// but a counted error.
type TCPSink struct {
	Addr string

	mu       sync.Mutex
	conn     net.Conn
	lastDial time.Time
}

// Write sends p, redialing if needed.
func (t *TCPSink) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		if time.Since(t.lastDial) < time.Second {
			return 0, fmt.Errorf("sink %s: not connected", t.Addr)
		}
		t.lastDial = time.Now()
		c, err := net.DialTimeout("tcp", t.Addr, 2*time.Second)
		if err != nil {
			return 0, fmt.Errorf("sink: %w", err)
		}
		t.conn = c
	}
	_ = t.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	n, err := t.conn.Write(p)
	if err != nil {
		t.conn.Close()
		t.conn = nil
		return n, fmt.Errorf("sink %s: %w", t.Addr, err)
	}
	return n, nil
}

// Close closes the connection.
func (t *TCPSink) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// OpenFileSink appends corrections to path (0600: corrections can be a
// paid service's data).
func OpenFileSink(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return f, nil
}
