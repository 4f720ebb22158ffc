package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/plugins/ntrip/internal/casttest"
	"github.com/depai/depai/plugins/ntrip/internal/ntrip"
	"github.com/depai/depai/plugins/ntrip/internal/rtcm"
	"github.com/depai/depai/plugins/ntrip/internal/session"
	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

func corrections(t testing.TB, corrupt bool) []byte {
	var out []byte
	add := func(p []byte) {
		f, err := rtcm.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f...)
	}
	for _, typ := range []int{1074, 1084, 1094, 1124} {
		add(rtcm.EncodeMSMHeader(rtcm.MSM{Type: typ, Station: 2003, Satellites: 8, Signals: 2}))
	}
	x, y, z := rtcm.GeodeticToECEF(48.1173, 11.5166, 545.4)
	add(rtcm.EncodeStation(rtcm.Station{ID: 2003, ITRFYear: 20, X: x, Y: y, Z: z}))
	add([]byte{1230 >> 4, (1230&0xF)<<4 | 2003>>8, 2003 & 0xFF, 0x00})
	if corrupt {
		f, _ := rtcm.Encode(rtcm.EncodeMSMHeader(rtcm.MSM{Type: 1074, Station: 2003, Satellites: 8, Signals: 2}))
		f[8] ^= 0x10
		out = append(out, f...)
	}
	return out
}

func feed(ctx context.Context, addr string, data []byte) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer conn.Close()
	for ctx.Err() == nil {
		if _, err := conn.Write(data); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, pt *plugintest.Plugin, ok func(session.Status) bool) session.Status {
	t.Helper()
	var st session.Status
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err = plugintest.CallAs[session.Status](pt, "ntrip.status", StatusIn{})
		if err == nil && ok(st) {
			return st
		}
	}
	t.Fatalf("status never matched: %+v, %v", st, err)
	return st
}

// TestPluginAgainstStr2str runs the plugin against RTKLIB's str2str as the
// caster (inside unshare -n, see casttest): message types counted, a
// corrupted frame refused, the station decoded with the rover's distance to
// it, corrections forwarded to a file sink, the sourcetable listed; then a
// wrong password shows as a 401 in ntrip.status.
func TestPluginAgainstStr2str(t *testing.T) {
	if !casttest.InNetns(t) {
		return
	}
	c := casttest.Start(t, "user", "pw", "GEOD01")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go feed(ctx, c.Input, corrections(t, true))
	sink := filepath.Join(t.TempDir(), "corrections.rtcm3")
	cfg := map[string]string{"caster": c.Addr, "mount": "GEOD01", "user": "user", "version": "1", "position": "48.1173,11.5266,545.4", "sink": "file://" + sink}
	pt := plugintest.New(t, plugintest.Config(cfg), plugintest.Secrets(map[string]string{secretPassword: "pw"}))
	st := waitStatus(t, pt, func(s session.Status) bool { return s.ByType["1005"] >= 2 && s.BadByKind["crc"] >= 1 })
	for _, typ := range []string{"1074", "1084", "1094", "1124", "1005", "1230"} {
		if st.ByType[typ] == 0 {
			t.Errorf("no %s counted: %v", typ, st.ByType)
		}
	}
	// 0.01° of longitude at 48.1173° N, 545 m up, is a 744.62 m chord.
	if !st.Connected || st.Station == nil || st.Station.ID != 2003 || st.BaseDistance == nil || math.Abs(*st.BaseDistance-744.62) > 0.05 || st.Age == nil || *st.Age > 5 || st.Bytes == 0 || st.GGASent < 1 {
		t.Fatalf("status = %+v", st)
	}
	if st.SinkErrors != 0 || st.SinkBytes == 0 {
		t.Fatalf("sink: %+v", st)
	}
	raw, err := os.ReadFile(sink)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range rtcm.Frames(bytes.NewReader(raw)) {
		if err != nil {
			t.Fatalf("the sink got a bad frame: %v", err) // refused frames are not forwarded
		}
		n++
	}
	if n == 0 {
		t.Fatal("sink is empty")
	}
	tab, err := plugintest.CallAs[ntrip.Table](pt, "ntrip.sources", SourcesIn{})
	if err != nil || len(tab.Mounts) != 1 || tab.Mounts[0].Name != "GEOD01" {
		t.Fatalf("sources = %+v, %v", tab, err)
	}
	unload(t, pt)

	bad := plugintest.New(t, plugintest.Config(cfg), plugintest.Secrets(map[string]string{secretPassword: "wrong"}))
	st = waitStatus(t, bad, func(s session.Status) bool { return s.LastError != "" })
	if st.Connected || !strings.Contains(st.LastError, "401") || st.Frames != 0 {
		t.Fatalf("wrong password: %+v", st)
	}
}

// TestHangingCaster: a caster that accepts and never answers shows in
// ntrip.status as a timeout, the plugin stays responsive.
func TestHangingCaster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	pt := plugintest.New(t, plugintest.Config(map[string]string{"caster": l.Addr().String(), "mount": "M", "response_timeout": "200ms"}))
	st := waitStatus(t, pt, func(s session.Status) bool { return s.LastError != "" })
	if st.Connected || !strings.Contains(st.LastError, "did not answer") {
		t.Fatalf("status = %+v", st)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []map[string]string{
		{"mount": "M"},
		{"caster": "127.0.0.1:1", "version": "3"},
		{"caster": "127.0.0.1:1", "position": "91,0"},
		{"caster": "127.0.0.1:1", "sink": "udp://x"},
		{"replay": "replay:///tmp/x.rec", "record": "/tmp/x.rec"},
	} {
		pt := plugintest.New(t, plugintest.Config(cfg))
		_, err := pt.Call("ntrip.status", StatusIn{})
		if we, ok := errors.AsType[*wire.Error](err); !ok || we.Code != wire.CodeInvalidArgument {
			t.Errorf("config %v: %v; want invalid_argument", cfg, err)
		}
		unload(t, pt)
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

// TestRecordThenReplay records str2str's stream (inside unshare -n) and
// replays the recording with no caster: the same message types are
// counted again.
func TestRecordThenReplay(t *testing.T) {
	if !casttest.InNetns(t) {
		return
	}
	c := casttest.Start(t, "user", "pw", "GEOD01")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go feed(ctx, c.Input, corrections(t, false))
	rec := filepath.Join(t.TempDir(), "caster.rec")
	recorded := plugintest.New(t, plugintest.Config(map[string]string{"caster": c.Addr, "mount": "GEOD01", "user": "user", "version": "1", "record": rec}), plugintest.Secrets(map[string]string{secretPassword: "pw"}))
	waitStatus(t, recorded, func(s session.Status) bool { return s.ByType["1005"] >= 3 })
	cancel()
	unload(t, recorded)

	pt := plugintest.New(t, plugintest.Config(map[string]string{"replay": "replay://" + rec + "?speed=0"}))
	st := waitStatus(t, pt, func(s session.Status) bool { return s.ByType["1005"] >= 3 && s.ByType["1124"] >= 3 })
	if st.Bad != 0 || st.Station == nil || st.Station.ID != 2003 {
		t.Fatalf("replayed status %+v", st)
	}
}
