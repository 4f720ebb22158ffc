// Command gnss is the depai plugin for a GNSS receiver: position, fix
// quality (none, 2d, 3d, dgps, rtk_float, rtk_fixed), accuracy, speed,
// heading and satellites, read from gpsd's JSON protocol, from raw NMEA 0183
// over TCP, or from a replayed NMEA log.
//
// It is a process plugin, not WASM: it opens the receiver's serial port, or
// holds a long-lived TCP connection to gpsd or the receiver, and reads it
// from its own goroutine, and it opens log files from the local file
// system — all beyond the WASM sandbox. A
// process plugin is trusted native code with the file system and network
// of the agent's user; grant it only to a receiver you trust.
//
// Config (granted keys):
//
//	source       gpsd://127.0.0.1:2947 (default) | nmea+tcp://host:port |
//	             serial:///dev/ttyUSB0?baud=9600 (8N1; default baud 9600) |
//	             file:///path/log.nmea?speed=1&loop=true (speed 0: as fast as read) |
//	             replay:///path/session.rec?speed=1&loop=true (a recording, see record)
//	record       a file path: the live gpsd or NMEA byte stream is recorded there
//	             with timestamps (plugins/internal/recording), for replay:// later
//	stale_after  a Go duration (default 3s): with no data for this long the
//	             fix is reported as none — an old position is not a current one
//	track_len    fixes kept for gnss.track (default 600)
//
// The sensor gnss.fix is polled every second; its reading is a fix.Fix
// (see internal/fix). Changes of fix quality and of the link are emitted on
// the topic gnss.events as they happen (checked every 100 ms), between the
// polls.
//
// The reader is the plugin's run hook (sdk.Run): the host starts it right
// after the load, it reads the config then, and it runs until the plugin
// is unloaded. A refused config is logged and is every call's answer.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/depai/depai/plugins/gnss/internal/fix"
	"github.com/depai/depai/plugins/gnss/internal/gpsd"
	"github.com/depai/depai/plugins/gnss/internal/nmea"
	"github.com/depai/depai/plugins/internal/backoff"
	"github.com/depai/depai/plugins/internal/live"
	"github.com/depai/depai/plugins/internal/recording"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
	"go.bug.st/serial"
)

// Topic is where quality and link changes are emitted.
const Topic = "gnss.events"

const (
	defaultSource = "gpsd://127.0.0.1:2947"
	defaultStale  = 3 * time.Second
	defaultTrack  = 600
)

func init() {
	sdk.Plugin("gnss", "0.1.0")
	sdk.Requests(wire.Capabilities{Config: []string{"source", "stale_after", "track_len", "record"}, Emit: []string{Topic}})
	sdk.Sensor("gnss.fix", "The receiver's current fix: time, quality, lat/lon/alt, accuracy, speed, heading, satellites.", time.Second, readFix)
	sdk.Tool("gnss.position", "Where this robot is now: the latest fix, its age, and whether it is stale.", position)
	sdk.Tool("gnss.track", "The newest fixes, oldest first.", track)
	sdk.Tool("gnss.status", "The receiver link: connected, sentences read and refused by kind, last error.", status)
	sdk.Run(run)
}

func main() { sdk.Main() }

// receiver is what the run hook started, for the handlers.
var receiver live.Slot[reader]

// reader is a running receiver's state and the settings it runs with.
type reader struct {
	st  *fix.State
	cfg settings
}

// watchEvery is how often the run hook looks for changes to emit.
const watchEvery = 100 * time.Millisecond

// run is the run hook: it starts the reader for the configured source and
// emits its changes until the plugin is unloaded.
func run(ctx context.Context) error {
	r, err := start(ctx)
	if err != nil {
		sdk.Log(ctx, slog.LevelWarn, "gnss: not started", "err", err.Error())
	} else {
		go watch(ctx, r)
	}
	receiver.Hold(ctx, r, err)
	return nil
}

type settings struct {
	source   string
	stale    time.Duration
	trackLen int
	record   string
}

// config reads the plugin's settings; a granted key without a value means
// its default.
func config(ctx context.Context) (settings, error) {
	s := settings{source: defaultSource, stale: defaultStale, trackLen: defaultTrack}
	get := func(key string) (string, bool, error) {
		v, err := sdk.Config(ctx, key)
		if we, ok := errors.AsType[*wire.Error](err); ok && we.Code == wire.CodeNotFound {
			return "", false, nil
		}
		return v, err == nil, err
	}
	if v, ok, err := get("source"); err != nil {
		return s, err
	} else if ok {
		s.source = v
	}
	if v, ok, err := get("stale_after"); err != nil {
		return s, err
	} else if ok {
		d, perr := time.ParseDuration(v)
		if perr != nil || d <= 0 {
			return s, sdk.Errorf(wire.CodeInvalidArgument, "gnss config stale_after %q: want a positive Go duration such as 3s", v)
		}
		s.stale = d
	}
	if v, ok, err := get("record"); err != nil {
		return s, err
	} else if ok {
		s.record = v
	}
	if v, ok, err := get("track_len"); err != nil {
		return s, err
	} else if ok {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > 100000 {
			return s, sdk.Errorf(wire.CodeInvalidArgument, "gnss config track_len %q: want an integer 1-100000", v)
		}
		s.trackLen = n
	}
	return s, nil
}

// start starts the reader for the configured source; it runs until ctx ends.
func start(ctx context.Context) (reader, error) {
	cfg, err := config(ctx)
	if err != nil {
		return reader{}, err
	}
	// Validate the source before the record file is created (and
	// truncated), so a typo costs no recording.
	if _, err := parseSource(cfg.source, nil); err != nil {
		return reader{}, err
	}
	var rec *recorder
	if cfg.record != "" {
		if u, _ := url.Parse(cfg.source); (u.Scheme == "file" || u.Scheme == "replay") && filepath.Clean(u.Path) == filepath.Clean(cfg.record) {
			return reader{}, sdk.Errorf(wire.CodeInvalidArgument, "gnss config record %q is the file being replayed", cfg.record)
		}
		if rec, err = newRecorder(cfg); err != nil {
			return reader{}, err
		}
	}
	open, _ := parseSource(cfg.source, rec) // validated above
	st := fix.NewState(cfg.source, cfg.trackLen)
	go func() {
		defer rec.close()
		open(ctx, st)
	}()
	return reader{st: st, cfg: cfg}, nil
}

// parseSource returns the reader loop for a source URL; rec, if not nil,
// records a live source's bytes.
func parseSource(src string, rec *recorder) (func(context.Context, *fix.State), error) {
	u, err := url.Parse(src)
	if err != nil {
		return nil, sdk.Errorf(wire.CodeInvalidArgument, "gnss config source %q: %v", src, err)
	}
	bad := func(msg string) error {
		return sdk.Errorf(wire.CodeInvalidArgument, "gnss config source %q: %s", src, msg)
	}
	switch u.Scheme {
	case "gpsd":
		if u.Host == "" {
			return nil, bad("want gpsd://host:port")
		}
		return func(ctx context.Context, st *fix.State) { readGPSD(ctx, st, u.Host, rec.start("gpsd", src)) }, nil
	case "nmea+tcp":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, bad("want nmea+tcp://host:port")
		}
		return func(ctx context.Context, st *fix.State) { readNMEATCP(ctx, st, u.Host, rec.start("nmea", src)) }, nil
	case "serial":
		baud := 9600
		if v := u.Query().Get("baud"); v != "" {
			if baud, err = strconv.Atoi(v); err != nil || baud < 50 || baud > 4000000 {
				return nil, bad("baud: want a rate such as 9600 or 115200")
			}
		}
		if u.Path == "" {
			return nil, bad("want serial:///dev/ttyXXX")
		}
		return func(ctx context.Context, st *fix.State) { readSerial(ctx, st, u.Path, baud, rec.start("nmea", src)) }, nil
	case "replay":
		speed, loop, err := playback(u)
		if err != nil {
			return nil, bad(err.Error())
		}
		return func(ctx context.Context, st *fix.State) { replayRecording(ctx, st, u.Path, speed, loop) }, nil
	case "file":
		speed, loop, err := playback(u)
		if err != nil {
			return nil, bad(err.Error())
		}
		return func(ctx context.Context, st *fix.State) { replay(ctx, st, u.Path, speed, loop) }, nil
	}
	return nil, bad("want a gpsd://, nmea+tcp://, serial://, file:// or replay:// URL")
}

// playback reads a replay URL's path, speed and loop.
func playback(u *url.URL) (speed float64, loop bool, err error) {
	if u.Path == "" {
		return 0, false, errors.New("want an absolute path, as in file:///path")
	}
	speed = 1
	if v := u.Query().Get("speed"); v != "" {
		speed, err = strconv.ParseFloat(v, 64)
		if err != nil || speed < 0 {
			return 0, false, errors.New("speed: want a number ≥ 0 (0: as fast as read)")
		}
	}
	return speed, u.Query().Get("loop") == "true", nil
}

func readGPSD(ctx context.Context, st *fix.State, addr string, rec *recording.Writer) {
	cfg := gpsd.Config{Addr: addr, Backoff: backoff.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}}
	if rec != nil {
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return recordedConn{Conn: c, r: recording.Tee(c, rec, time.Now)}, nil
		}
	}
	for r, err := range gpsd.Stream(ctx, cfg) {
		st.GPSD(r, err, time.Now())
	}
}

// recordedConn is a connection whose reads are recorded; deadlines and
// writes go to the connection itself.
type recordedConn struct {
	net.Conn
	r io.Reader
}

func (c recordedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func readNMEATCP(ctx context.Context, st *fix.State, addr string, rec *recording.Writer) {
	b := backoff.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	d := net.Dialer{Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			st.LinkLost(fmt.Errorf("dial %s: %w", addr, err), time.Now())
		} else {
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			var in io.Reader = conn
			if rec != nil {
				in = recording.Tee(conn, rec, time.Now)
			}
			var readErr error
			for s, err := range nmea.Scan(in) {
				if err != nil && nmea.KindOf(err) == "" {
					readErr = err
					break
				}
				b.Reset()
				st.NMEA(s, err, time.Now())
			}
			stop()
			conn.Close()
			if readErr == nil {
				readErr = errors.New("connection closed")
			}
			if ctx.Err() == nil {
				st.LinkLost(fmt.Errorf("read %s: %w", addr, readErr), time.Now())
			}
		}
		if !backoff.Sleep(ctx, b.Next()) {
			return
		}
	}
}

// readSerial reads NMEA from a serial port, reopening it (a receiver
// unplugged and plugged back) with backoff.
func readSerial(ctx context.Context, st *fix.State, path string, baud int, rec *recording.Writer) {
	b := backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		port, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
		if err != nil {
			st.LinkLost(fmt.Errorf("open %s: %w", path, err), time.Now())
		} else {
			// Closing the port is what ends a blocked read.
			stop := context.AfterFunc(ctx, func() { port.Close() })
			var in io.Reader = port
			if rec != nil {
				in = recording.Tee(port, rec, time.Now)
			}
			readErr := errors.New("port closed")
			for s, err := range nmea.Scan(in) {
				if err != nil && nmea.KindOf(err) == "" {
					readErr = err
					break
				}
				b.Reset()
				st.NMEA(s, err, time.Now())
			}
			stop()
			port.Close()
			if ctx.Err() == nil {
				st.LinkLost(fmt.Errorf("read %s: %w", path, readErr), time.Now())
			}
		}
		if !backoff.Sleep(ctx, b.Next()) {
			return
		}
	}
}

// replay feeds a log file, pacing epochs by the sentences' own times
// divided by speed.
func replay(ctx context.Context, st *fix.State, path string, speed float64, loop bool) {
	for {
		f, err := os.Open(path)
		if err != nil {
			st.LinkLost(fmt.Errorf("replay: %w", err), time.Now())
			return
		}
		last := time.Duration(-1)
		for s, err := range nmea.Scan(f) {
			if ctx.Err() != nil {
				break
			}
			if tod := timeOfDay(s); speed > 0 && tod >= 0 {
				if last >= 0 && tod > last && !backoff.Sleep(ctx, time.Duration(float64(tod-last)/speed)) {
					break
				}
				last = tod
			}
			if err != nil && nmea.KindOf(err) == "" {
				st.LinkLost(fmt.Errorf("replay %s: %w", path, err), time.Now())
				break
			}
			st.NMEA(s, err, time.Now())
		}
		f.Close()
		if !loop || ctx.Err() != nil {
			return
		}
	}
}

// replayRecording plays a recording made with the record setting, paced by
// its own timestamps divided by speed.
func replayRecording(ctx context.Context, st *fix.State, path string, speed float64, loop bool) {
	for {
		if err := playOnce(ctx, st, path, speed); err != nil {
			st.LinkLost(fmt.Errorf("replay %s: %w", path, err), time.Now())
			return
		}
		if !loop || ctx.Err() != nil {
			return
		}
	}
}

func playOnce(ctx context.Context, st *fix.State, path string, speed float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	meta, chunks, err := recording.Open(f)
	if err != nil {
		return err
	}
	in := recording.Play(ctx, chunks, speed)
	switch meta.Protocol {
	case "nmea":
		for s, err := range nmea.Scan(in) {
			if err != nil && nmea.KindOf(err) == "" {
				return err
			}
			st.NMEA(s, err, time.Now())
		}
	case "gpsd":
		for r, err := range gpsd.Watch(ctx, readOnly{in}) {
			if le, ok := errors.AsType[*gpsd.LinkError](err); ok {
				if errors.Is(le, io.EOF) {
					return nil
				}
				return le.Err
			}
			st.GPSD(r, err, time.Now())
		}
	default:
		return fmt.Errorf("recording of protocol %q; want nmea or gpsd", meta.Protocol)
	}
	return nil
}

// readOnly lets gpsd.Watch read a recording: its watch command goes nowhere.
type readOnly struct{ io.Reader }

func (readOnly) Write(p []byte) (int, error) { return len(p), nil }

// recorder is the record setting's file.
type recorder struct {
	f *os.File
}

func newRecorder(cfg settings) (*recorder, error) {
	f, err := os.OpenFile(cfg.record, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, sdk.Errorf(wire.CodeInvalidArgument, "gnss config record %q: %v", cfg.record, err)
	}
	return &recorder{f: f}, nil
}

// start writes the recording's header for protocol and returns its writer;
// nil when not recording or when the header cannot be written (the live
// stream goes on unrecorded).
func (r *recorder) start(protocol, source string) *recording.Writer {
	if r == nil {
		return nil
	}
	w, err := recording.NewWriter(r.f, recording.Meta{Protocol: protocol, Source: source, Started: time.Now()})
	if err != nil {
		return nil
	}
	return w
}

func (r *recorder) close() {
	if r != nil {
		r.f.Close()
	}
}

func timeOfDay(s nmea.Sentence) time.Duration {
	switch v := s.(type) {
	case *nmea.GGA:
		return v.Time
	case *nmea.RMC:
		return v.Time
	}
	return -1
}

// current is the fix now: the newest one, or none when the source has
// been silent for longer than stale_after.
func current(st *fix.State, cfg settings, now time.Time) (fix.Fix, time.Duration, bool, bool) {
	f, ok := st.Current()
	if !ok {
		return fix.Fix{}, 0, false, false
	}
	age := now.Sub(f.Received)
	stale := age > cfg.stale
	if stale {
		f = fix.Fix{Time: now.UTC(), Quality: fix.None, Received: now}
	}
	return f, age, stale, true
}

// readFix is the gnss.fix sensor. Times are the process's wall clock: a
// process plugin is native code with the real clock, so it needs no clock
// grant.
func readFix(ctx context.Context) (fix.Fix, error) {
	r, err := receiver.Get(ctx)
	if err != nil {
		return fix.Fix{}, err
	}
	f, _, _, ok := current(r.st, r.cfg, time.Now())
	if !ok {
		return fix.Fix{}, noFix(r.st)
	}
	return f, nil
}

func noFix(st *fix.State) error {
	s := st.Status()
	msg := "no fix yet from " + s.Source
	if s.LastError != "" {
		msg += "; last error: " + s.LastError
	}
	return &wire.Error{Code: wire.CodeUnavailable, Message: msg, Retryable: true}
}

// Event is what is emitted on Topic.
type Event struct {
	Type      string      `json:"type"` // receiver_connected, receiver_lost, quality_changed
	Quality   fix.Quality `json:"quality"`
	Previous  fix.Quality `json:"previous,omitempty"`
	Source    string      `json:"source"`
	LastError string      `json:"last_error,omitempty"`
	// Fix is the fix that changed the quality: the reading "on change",
	// between the interval's polls.
	Fix *fix.Fix `json:"fix,omitempty"`
}

// watch emits what changed — the link, the fix quality (also to none, when
// the source went stale) — every watchEvery until ctx ends.
func watch(ctx context.Context, r reader) {
	var emitted struct {
		quality   fix.Quality
		connected bool
	}
	emitted.quality = fix.None
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		s := r.st.Status()
		f, _, _, have := current(r.st, r.cfg, time.Now())
		q := fix.None
		if have {
			q = f.Quality
		}
		var evs []Event
		if s.Connected != emitted.connected {
			ev := Event{Type: "receiver_lost", Quality: q, Source: s.Source, LastError: s.LastError}
			if s.Connected {
				ev = Event{Type: "receiver_connected", Quality: q, Source: s.Source}
			}
			evs = append(evs, ev)
			emitted.connected = s.Connected
		}
		if q != emitted.quality {
			ev := Event{Type: "quality_changed", Quality: q, Previous: emitted.quality, Source: s.Source}
			if have {
				ev.Fix = &f
			}
			evs = append(evs, ev)
			emitted.quality = q
		}
		for _, ev := range evs {
			if err := sdk.Emit(ctx, Topic, ev); err != nil && ctx.Err() == nil {
				sdk.Log(ctx, slog.LevelWarn, "gnss: emit "+ev.Type, "err", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PositionIn is gnss.position's input (none).
type PositionIn struct{}

// Position is gnss.position's answer.
type Position struct {
	Fix    fix.Fix `json:"fix"`
	Age    float64 `json:"age" jsonschema:"seconds since the fix was received"`
	Stale  bool    `json:"stale" jsonschema:"no data for longer than stale_after; the fix is none"`
	Source string  `json:"source"`
}

func position(ctx context.Context, _ PositionIn) (Position, error) {
	r, err := receiver.Get(ctx)
	if err != nil {
		return Position{}, err
	}
	f, age, stale, ok := current(r.st, r.cfg, time.Now())
	if !ok {
		return Position{}, noFix(r.st)
	}
	return Position{Fix: f, Age: age.Seconds(), Stale: stale, Source: r.cfg.source}, nil
}

// TrackIn is gnss.track's input.
type TrackIn struct {
	Limit int `json:"limit,omitempty" jsonschema:"at most this many fixes (default 60)"`
}

// TrackOut is gnss.track's answer.
type TrackOut struct {
	Fixes []fix.Fix `json:"fixes"`
}

func track(ctx context.Context, in TrackIn) (TrackOut, error) {
	r, err := receiver.Get(ctx)
	if err != nil {
		return TrackOut{}, err
	}
	n := in.Limit
	if n <= 0 {
		n = 60
	}
	return TrackOut{Fixes: r.st.Track(n)}, nil
}

// StatusIn is gnss.status's input (none).
type StatusIn struct{}

func status(ctx context.Context, _ StatusIn) (fix.Status, error) {
	r, err := receiver.Get(ctx)
	if err != nil {
		return fix.Status{}, err
	}
	return r.st.Status(), nil
}
