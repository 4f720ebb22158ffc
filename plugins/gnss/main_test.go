package main

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/plugins/gnss/internal/fix"
	"github.com/depai/depai/plugins/gnss/internal/gpsfake"
	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

func trackFile(t testing.TB) string {
	p, err := filepath.Abs("testdata/track.nmea")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pollUntil polls gnss.fix until ok accepts a reading.
func pollUntil(t *testing.T, pt *plugintest.Plugin, within time.Duration, ok func(fix.Fix) bool) fix.Fix {
	t.Helper()
	deadline := time.Now().Add(within)
	var last fix.Fix
	var lastErr error
	for time.Now().Before(deadline) {
		b, err := pt.Poll("gnss.fix")
		lastErr = err
		if err == nil {
			if err := json.Unmarshal(b, &last); err != nil {
				t.Fatal(err)
			}
			if ok(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no matching reading within %v; last %+v, %v", within, last, lastErr)
	return last
}

// TestGPSD runs the plugin against a real gpsd (gpsfake replaying the
// shipped log) and checks the readings and tools end to end.
func TestGPSD(t *testing.T) {
	addr, _ := gpsfake.Start(t, "testdata/track.nmea", 0.005, 0)
	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "gpsd://" + addr}))
	f := pollUntil(t, pt, 30*time.Second, func(f fix.Fix) bool { return f.Quality == fix.RTKFixed && f.Satellites > 0 })
	if !f.HasPosition() || math.Abs(*f.Lat-48.1173) > 1e-5 || f.Speed == nil || math.Abs(*f.Speed-1) > 0.01 || f.Heading == nil || *f.Heading != 90 || f.Accuracy == nil {
		t.Fatalf("RTK fixed reading = %+v", f)
	}
	pos, err := plugintest.CallAs[Position](pt, "gnss.position", PositionIn{})
	if err != nil || pos.Stale || !pos.Fix.HasPosition() || pos.Source != "gpsd://"+addr {
		t.Fatalf("position = %+v, %v", pos, err)
	}
	st, err := plugintest.CallAs[fix.Status](pt, "gnss.status", StatusIn{})
	// gpsd's SKY (from the log's GSV and GSA) gives satellites in view and used.
	if err != nil || !st.Connected || st.Good == 0 || st.Fixes == 0 || st.Bad != 0 || st.Visible != 8 || f.Satellites != 8 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	var tr TrackOut
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(tr.Fixes) < 2; time.Sleep(20 * time.Millisecond) {
		tr, err = plugintest.CallAs[TrackOut](pt, "gnss.track", TrackIn{Limit: 2})
	}
	if err != nil || len(tr.Fixes) != 2 || tr.Fixes[0].Time.After(tr.Fixes[1].Time) {
		t.Fatalf("track = %+v, %v", tr, err)
	}
	// Changes are emitted by the run hook's watcher, within watchEvery.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if e := pt.Emitted(); len(e) > 0 && strings.Contains(string(e[len(e)-1].Payload), `"quality":"rtk_fixed"`) {
			break
		}
	}
	var types []string
	for _, e := range pt.Emitted() {
		var ev Event
		if e.Topic != Topic || json.Unmarshal(e.Payload, &ev) != nil {
			t.Fatalf("emitted %s %s", e.Topic, e.Payload)
		}
		types = append(types, ev.Type+":"+string(ev.Quality))
		if ev.Type == "quality_changed" && ev.Quality != fix.None && (ev.Fix == nil || ev.Fix.Quality != ev.Quality || !ev.Fix.HasPosition()) {
			t.Errorf("quality_changed without its fix: %s", e.Payload)
		}
	}
	if len(types) < 2 || types[0] != "receiver_connected:"+string(types[0][len("receiver_connected:"):]) || types[len(types)-1] != "quality_changed:rtk_fixed" {
		t.Fatalf("events = %v; want receiver_connected first and quality_changed:rtk_fixed last", types)
	}
}

// TestReplayFile replays the log as fast as it reads: every epoch becomes a
// fix, the four bad lines are counted by kind, and none is believed.
func TestReplayFile(t *testing.T) {
	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "file://" + trackFile(t) + "?speed=0", "stale_after": "1h"}))
	if _, err := pt.Poll("gnss.fix"); err != nil && !isCode(err, wire.CodeUnavailable) {
		t.Fatal(err)
	}
	var st fix.Status
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && st.Fixes < 60; time.Sleep(10 * time.Millisecond) {
		var err error
		if st, err = plugintest.CallAs[fix.Status](pt, "gnss.status", StatusIn{}); err != nil {
			t.Fatal(err)
		}
	}
	if st.Fixes != 60 || st.Bad != 4 || st.BadByKind["checksum"] != 3 || st.BadByKind["format"] != 1 || st.LastError == "" {
		t.Fatalf("status = %+v", st)
	}
	tr, err := plugintest.CallAs[TrackOut](pt, "gnss.track", TrackIn{Limit: 1000})
	if err != nil || len(tr.Fixes) != 60 {
		t.Fatalf("track: %d fixes, %v", len(tr.Fixes), err)
	}
	for _, f := range tr.Fixes {
		if f.HasPosition() && math.Abs(*f.Lat-48.1173) > 1e-5 {
			t.Fatalf("a refused sentence's position was stored: %+v", f)
		}
	}
}

// TestNMEATCPReconnects serves the log over raw TCP and closes the
// connection after each pass: the plugin counts the lost link and reads
// again. The server is an in-test listener on 127.0.0.1 writing the shipped
// log — NMEA over TCP is just lines, as a receiver's TCP port sends them.
func TestNMEATCPReconnects(t *testing.T) {
	log, err := os.ReadFile("testdata/track.nmea")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(log)
			c.Close()
		}
	}()
	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "nmea+tcp://" + l.Addr().String(), "stale_after": "1h"}))
	_, _ = pt.Poll("gnss.fix")
	var st fix.Status
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && st.Reconnects < 2; time.Sleep(20 * time.Millisecond) {
		st, _ = plugintest.CallAs[fix.Status](pt, "gnss.status", StatusIn{})
	}
	if st.Reconnects < 2 || st.Bad < 8 || st.Fixes < 120 {
		t.Fatalf("status = %+v; want ≥ 2 reconnects with two passes read", st)
	}
}

// TestStaleAndBadConfig: a replay that ended goes stale — quality none, no
// position — and a bad source is refused naming the value.
func TestStaleAndBadConfig(t *testing.T) {
	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "file://" + trackFile(t) + "?speed=0", "stale_after": "50ms"}))
	_, _ = pt.Poll("gnss.fix")
	time.Sleep(300 * time.Millisecond)
	pos, err := plugintest.CallAs[Position](pt, "gnss.position", PositionIn{})
	if err != nil || !pos.Stale || pos.Fix.Quality != fix.None || pos.Fix.HasPosition() {
		t.Fatalf("position after the replay ended = %+v, %v", pos, err)
	}
	unload(t, pt)

	keep := filepath.Join(t.TempDir(), "keep.rec")
	if err := os.WriteFile(keep, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []map[string]string{{"source": "bogus://x", "record": keep}, {"source": "replay://" + keep, "record": keep}} {
		bad := plugintest.New(t, plugintest.Config(cfg))
		if _, err := bad.Call("gnss.status", StatusIn{}); !isCode(err, wire.CodeInvalidArgument) {
			t.Errorf("config %v: %v; want invalid_argument", cfg, err)
		}
		unload(t, bad)
	}
	if b, _ := os.ReadFile(keep); string(b) != "precious" {
		t.Fatalf("a refused config truncated the record file: %q", b)
	}
	for _, src := range []string{"bogus://x", "gpsd://", "file://x?speed=-1"} {
		bad := plugintest.New(t, plugintest.Config(map[string]string{"source": src}))
		_, err := bad.Call("gnss.status", StatusIn{})
		if !isCode(err, wire.CodeInvalidArgument) || !strings.Contains(err.Error(), src) {
			t.Errorf("source %q: %v; want invalid_argument naming it", src, err)
		}
		unload(t, bad)
	}
}

// unload ends pt's run hook: the plugin's globals are shared by every load
// in this test binary, so loads that should not overlap are unloaded.
func unload(t *testing.T, pt *plugintest.Plugin) {
	t.Helper()
	if err := pt.Unload(); err != nil {
		t.Fatal(err)
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}

// TestRecordThenReplay records a real gpsd session (gpsfake) and replays
// the recording with no gpsd running: the same fixes come back.
func TestRecordThenReplay(t *testing.T) {
	addr, stop := gpsfake.Start(t, "testdata/track.nmea", 0.005, 0)
	rec := filepath.Join(t.TempDir(), "gpsd.rec")
	live := plugintest.New(t, plugintest.Config(map[string]string{"source": "gpsd://" + addr, "record": rec}))
	pollUntil(t, live, 30*time.Second, func(f fix.Fix) bool { return f.Quality == fix.RTKFixed })
	stop()
	unload(t, live)

	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "replay://" + rec + "?speed=0", "stale_after": "1h"}))
	f := pollUntil(t, pt, 10*time.Second, func(f fix.Fix) bool { return f.Quality == fix.RTKFixed })
	if !f.HasPosition() || math.Abs(*f.Lat-48.1173) > 1e-5 {
		t.Fatalf("replayed fix %+v", f)
	}
	if st, err := plugintest.CallAs[fix.Status](pt, "gnss.status", StatusIn{}); err != nil || st.Bad != 0 || st.Fixes == 0 {
		t.Fatalf("replay status %+v, %v", st, err)
	}
	unload(t, pt)
	bad := plugintest.New(t, plugintest.Config(map[string]string{"source": "replay://" + trackFile(t)}))
	if _, err := bad.Poll("gnss.fix"); err == nil {
		t.Fatal("a plain NMEA log replayed as a recording gave a fix")
	}
	var st fix.Status
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && st.LastError == ""; time.Sleep(20 * time.Millisecond) {
		st, _ = plugintest.CallAs[fix.Status](bad, "gnss.status", StatusIn{})
	}
	if !strings.Contains(st.LastError, "not a depai recording") {
		t.Fatalf("status %+v", st)
	}
}

// TestReaderStartsAtLoad: the reader is the run hook — it reads and emits
// from the load on, with no poll or tool call to start it (it used to wait
// for the first call).
func TestReaderStartsAtLoad(t *testing.T) {
	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "file://" + trackFile(t) + "?speed=0", "stale_after": "1h"}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range pt.Emitted() {
			var ev Event
			if json.Unmarshal(e.Payload, &ev) == nil && ev.Type == "quality_changed" && ev.Quality == fix.RTKFixed {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no quality_changed:rtk_fixed event without a call; emitted %v", pt.Emitted())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
