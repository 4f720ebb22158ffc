// Command ntrip is the depai plugin for RTK corrections from an NTRIP
// caster (GEODNET and any other): it keeps a mountpoint's RTCM3 stream up,
// uploads the rover's GGA, frames and counts the messages (MSM
// 1074/1084/1094/1124, station 1005/1006, biases 1230), forwards them to a
// sink — the receiver's correction input over TCP, or a file — and says how
// fresh the corrections are.
//
// It is a process plugin, not WASM: it holds a long-lived TCP connection to
// the caster, another to the sink, and may write a file — beyond the WASM
// sandbox. A process plugin is trusted native code with the network and
// file system of the agent's user; grant it only to a caster you trust.
//
// Config (granted keys): caster (host:port), mount, user, version (1 or 2,
// default 2), position ("lat,lon,alt" of the rover: GGA upload and the
// distance to the base), sink (tcp://host:port or file:///path),
// idle_timeout (a Go duration, default 15s: a caster silent that long is
// dropped), response_timeout (default 10s: the wait for the caster's answer),
// record (a file path: the caster's bytes are recorded there with
// timestamps, plugins/internal/recording), replay (replay:///path?speed=1: a
// recording replaces the caster, and repeats when it ends). The password is the secret
// ntrip_password.
//
// The session is the plugin's run hook (sdk.Run): the host starts it right
// after the load, it reads the config then, and it runs until the plugin is
// unloaded. A refused config is logged and is every call's answer.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/depai/depai/plugins/internal/backoff"
	"github.com/depai/depai/plugins/internal/live"
	"github.com/depai/depai/plugins/internal/recording"
	"github.com/depai/depai/plugins/ntrip/internal/ntrip"
	"github.com/depai/depai/plugins/ntrip/internal/session"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

var configKeys = []string{"caster", "mount", "user", "version", "position", "sink", "idle_timeout", "response_timeout", "record", "replay"}

const secretPassword = "ntrip_password"

func init() {
	sdk.Plugin("ntrip", "0.1.0")
	sdk.Requests(wire.Capabilities{Config: configKeys, Secrets: []string{secretPassword}})
	sdk.Tool("ntrip.sources", "The caster's sourcetable: its mountpoints, their formats, positions and whether they need the rover's GGA.", sources)
	sdk.Tool("ntrip.status", "The correction stream: connected, age of the newest correction, bytes/s, message types, refusals, base station and distance to it.", status)
	sdk.Run(live.Run(&sessions, "ntrip", start))
}

func main() { sdk.Main() }

// settings is the plugin's config.
type settings struct {
	ntrip          ntrip.Config
	rover          session.Rover
	sink           string
	record, replay string
	speed          float64
}

func config(ctx context.Context) (settings, error) {
	vals, err := sdk.ConfigValues(ctx, configKeys...)
	if err != nil {
		return settings{}, err
	}
	pw, err := sdk.Secret(ctx, secretPassword)
	if we, ok := errors.AsType[*wire.Error](err); err != nil && !(ok && we.Code == wire.CodeNotFound) {
		return settings{}, err
	}
	bad := func(key, msg string) error {
		return sdk.Errorf(wire.CodeInvalidArgument, "ntrip config %s %q: %s", key, vals[key], msg)
	}
	s := settings{ntrip: ntrip.Config{Addr: vals["caster"], Mount: strings.TrimPrefix(vals["mount"], "/"), User: vals["user"], Password: pw}, sink: vals["sink"], record: vals["record"]}
	if v, ok := vals["replay"]; ok {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "replay" || u.Path == "" {
			return s, bad("replay", "want replay:///path/to/recording?speed=1")
		}
		s.replay, s.speed = u.Path, 1
		if sp := u.Query().Get("speed"); sp != "" {
			if s.speed, err = strconv.ParseFloat(sp, 64); err != nil || s.speed < 0 {
				return s, bad("replay", "speed: want a number ≥ 0 (0: as fast as read)")
			}
		}
		if s.ntrip.Addr == "" {
			s.ntrip.Addr = "replay"
		}
	} else if _, _, err := net.SplitHostPort(s.ntrip.Addr); err != nil {
		return s, bad("caster", "want host:port")
	}
	if s.record != "" && s.replay != "" && filepath.Clean(s.record) == filepath.Clean(s.replay) {
		return s, bad("record", "is the recording being replayed")
	}
	if v, ok := vals["version"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 1 && n != 2) {
			return s, bad("version", "want 1 or 2")
		}
		s.ntrip.Version = n
	}
	for key, dst := range map[string]*time.Duration{"idle_timeout": &s.ntrip.IdleTimeout, "response_timeout": &s.ntrip.ResponseTimeout} {
		if v, ok := vals[key]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return s, bad(key, "want a positive Go duration such as 15s")
			}
			*dst = d
		}
	}
	if v, ok := vals["position"]; ok {
		f := strings.Split(v, ",")
		var x [3]float64
		for i := range f {
			if len(f) < 2 || len(f) > 3 {
				break
			}
			x[i], err = strconv.ParseFloat(strings.TrimSpace(f[i]), 64)
			if err != nil {
				break
			}
		}
		if len(f) < 2 || len(f) > 3 || err != nil || x[0] < -90 || x[0] > 90 || x[1] < -180 || x[1] > 180 {
			return s, bad("position", "want lat,lon[,alt] in degrees and metres")
		}
		s.rover = session.Rover{Lat: x[0], Lon: x[1], Alt: x[2], Set: true}
	}
	if s.sink != "" {
		u, err := url.Parse(s.sink)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "file") || (u.Scheme == "tcp" && u.Host == "") || (u.Scheme == "file" && u.Path == "") {
			return s, bad("sink", "want tcp://host:port or file:///path")
		}
	}
	return s, nil
}

// sessions is what the run hook started, for the handlers.
var sessions live.Slot[running]

// running is a running session's state and the settings it runs with.
type running struct {
	st  *session.State
	cfg settings
}

// start starts the session of the configured caster; it runs until ctx ends.
func start(ctx context.Context) (running, error) {
	cfg, err := config(ctx)
	if err != nil {
		return running{}, err
	}
	var sink io.WriteCloser
	if cfg.sink != "" {
		u, _ := url.Parse(cfg.sink) // validated by config
		if u.Scheme == "tcp" {
			sink = &session.TCPSink{Addr: u.Host}
		} else if sink, err = session.OpenFileSink(u.Path); err != nil {
			return running{}, sdk.Errorf(wire.CodeUnavailable, "ntrip: %v", err)
		}
	}
	scfg := session.Config{NTRIP: cfg.ntrip, Rover: cfg.rover, Backoff: backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}}
	if cfg.replay != "" {
		scfg.Open = func(ctx context.Context) (io.ReadCloser, error) { return openReplay(ctx, cfg.replay, cfg.speed) }
		scfg.Backoff = backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	var recFile *os.File
	if cfg.record != "" {
		if recFile, err = os.OpenFile(cfg.record, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err == nil {
			scfg.Record, err = recording.NewWriter(recFile, recording.Meta{Protocol: "rtcm3", Source: cfg.ntrip.Addr + "/" + cfg.ntrip.Mount, Started: time.Now()})
		}
		if err != nil {
			if recFile != nil {
				recFile.Close()
			}
			if sink != nil {
				sink.Close()
			}
			return running{}, sdk.Errorf(wire.CodeInvalidArgument, "ntrip config record %q: %v", cfg.record, err)
		}
	}
	if sink != nil {
		scfg.Sink = sink
	}
	st := session.NewState(cfg.ntrip.Addr, cfg.ntrip.Mount, cfg.sink, cfg.rover)
	go func() {
		if sink != nil {
			defer sink.Close()
		}
		if recFile != nil {
			defer recFile.Close()
		}
		session.Run(ctx, scfg, st)
	}()
	return running{st: st, cfg: cfg}, nil
}

// openReplay opens a recording of a caster's bytes as the session's source.
func openReplay(ctx context.Context, path string, speed float64) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	meta, chunks, err := recording.Open(f)
	if err == nil && meta.Protocol != "rtcm3" {
		err = fmt.Errorf("recording %s is of protocol %q; want rtcm3", path, meta.Protocol)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{recording.Play(ctx, chunks, speed), f}, nil
}

// StatusIn is ntrip.status's input (none).
type StatusIn struct{}

func status(ctx context.Context, _ StatusIn) (session.Status, error) {
	r, err := sessions.Get(ctx)
	if err != nil {
		return session.Status{}, err
	}
	return r.st.Status(time.Now()), nil
}

// SourcesIn is ntrip.sources's input.
type SourcesIn struct{}

func sources(ctx context.Context, _ SourcesIn) (ntrip.Table, error) {
	r, err := sessions.Get(ctx)
	if err != nil {
		return ntrip.Table{}, err
	}
	c := r.cfg.ntrip
	c.Mount = ""
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t, err := ntrip.GetSourcetable(ctx, c)
	if err != nil {
		return t, &wire.Error{Code: wire.CodeUnavailable, Message: err.Error(), Retryable: true}
	}
	return t, nil
}
