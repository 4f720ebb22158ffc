package ntrip_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/plugins/ntrip/internal/casttest"
	"github.com/depai/depai/plugins/ntrip/internal/ntrip"
	"github.com/depai/depai/plugins/ntrip/internal/rtcm"
)

// corrections is one epoch of what a GEODNET-style base sends: MSM4 of
// four constellations, the station position, GLONASS biases.
func corrections(t testing.TB) []byte {
	var out []byte
	add := func(p []byte) {
		f, err := rtcm.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f...)
	}
	for _, typ := range []int{1074, 1084, 1094, 1124} {
		add(rtcm.EncodeMSMHeader(rtcm.MSM{Type: typ, Station: 2003, Epoch: 1000, Satellites: 8, Signals: 2}))
	}
	x, y, z := rtcm.GeodeticToECEF(48.1173, 11.5166, 545.4)
	add(rtcm.EncodeStation(rtcm.Station{ID: 2003, ITRFYear: 20, X: x, Y: y, Z: z}))
	add([]byte{1230 >> 4, (1230&0xF)<<4 | 2003>>8, 2003 & 0xFF, 0x00})
	return out
}

// feed writes corrections into str2str's input until ctx ends.
func feed(ctx context.Context, t *testing.T, addr string, data []byte) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
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

// TestAgainstStr2str runs RTKLIB's str2str as the caster (inside unshare
// -n): the sourcetable lists the mountpoint, v1 and v2 requests with good
// credentials stream the fed RTCM3 frames, bad credentials get 401, an
// unknown mountpoint the sourcetable.
func TestAgainstStr2str(t *testing.T) {
	if !casttest.InNetns(t) {
		return
	}
	c := casttest.Start(t, "user", "pw", "GEOD01")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go feed(ctx, t, c.Input, corrections(t))

	tab, err := ntrip.GetSourcetable(ctx, ntrip.Config{Addr: c.Addr, Version: 1})
	if err != nil || len(tab.Mounts) != 1 || tab.Mounts[0].Name != "GEOD01" {
		t.Fatalf("sourcetable = %+v, %v", tab, err)
	}
	for _, v := range []int{1, 2} {
		s, err := ntrip.Connect(ctx, ntrip.Config{Addr: c.Addr, Mount: "GEOD01", User: "user", Password: "pw", Version: v, IdleTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		seen := map[int]bool{}
		for f, err := range rtcm.Frames(s) {
			if err != nil && rtcm.KindOf(err) == "" {
				t.Fatalf("v%d: %v", v, err)
			}
			if err == nil {
				seen[f.Type] = true
			}
			if len(seen) == 6 {
				break
			}
		}
		s.Close()
		for _, typ := range []int{1074, 1084, 1094, 1124, 1005, 1230} {
			if !seen[typ] {
				t.Errorf("v%d: message %d never arrived (saw %v)", v, typ, seen)
			}
		}
	}
	_, err = ntrip.Connect(ctx, ntrip.Config{Addr: c.Addr, Mount: "GEOD01", User: "user", Password: "wrong", Version: 1})
	if se, ok := errors.AsType[*ntrip.StatusError](err); !ok || se.Code != 401 {
		t.Fatalf("bad password: %v; want a 401 StatusError", err)
	}
	if _, err := ntrip.Connect(ctx, ntrip.Config{Addr: c.Addr, Mount: "NOPE", User: "user", Password: "pw", Version: 1}); !errors.Is(err, ntrip.ErrNoMount) {
		t.Fatalf("unknown mount: %v; want ErrNoMount", err)
	}
}

// TestHangingCaster: a caster that accepts and never answers, and one that
// answers and then sends nothing, both end in a timeout error, not a hang.
func TestHangingCaster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	answer := make(chan bool, 2)
	answer <- false
	answer <- true
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if <-answer {
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "ICY 200 OK\r\n")
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = ntrip.Connect(context.Background(), ntrip.Config{Addr: l.Addr().String(), Mount: "M", ResponseTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not answer") || time.Since(start) > 3*time.Second {
		t.Fatalf("silent caster: %v after %v", err, time.Since(start))
	}
	s, err := ntrip.Connect(context.Background(), ntrip.Config{Addr: l.Addr().String(), Mount: "M", Version: 1, IdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Read(make([]byte, 10))
	if err == nil || !strings.Contains(err.Error(), "sent nothing") {
		t.Fatalf("idle stream: %v", err)
	}
}

// TestV2ChunkedWithGGA: an NTRIP v2 caster answering HTTP/1.1 chunked, which
// like GEODNET's AUTO mountpoints sends nothing until it has the rover's
// GGA. The caster is net/http in the test: str2str speaks only v1, so this
// v2 path is checked against the documented protocol with scripted
// content.
func TestV2ChunkedWithGGA(t *testing.T) {
	gga := "$GPGGA,120000.00,4807.0380,N,01131.0000,E,4,12,0.7,545.4,M,46.9,M,,*55"
	data := corrections(t)
	var gotHeaders http.Header
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeaders = r.Header.Clone()
		u, p, ok := r.BasicAuth()
		if !ok || u != "rover" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/AUTO" || r.Header.Get("Ntrip-GGA") == "" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "gnss/data")
		w.WriteHeader(http.StatusOK)
		for range 3 {
			_, _ = w.Write(data)
			w.(http.Flusher).Flush()
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	s, err := ntrip.Connect(context.Background(), ntrip.Config{Addr: l.Addr().String(), Mount: "AUTO", User: "rover", Password: "secret", GGA: gga})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var types []int
	for f, err := range rtcm.Frames(s) {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, f.Type)
	}
	if s.Version != 2 || len(types) != 18 || !slices.Contains(types, 1005) {
		t.Fatalf("v%d frames %v", s.Version, types)
	}
	if gotHeaders.Get("Ntrip-Version") != "Ntrip/2.0" || gotHeaders.Get("Ntrip-Gga") != gga {
		t.Fatalf("headers %v", gotHeaders)
	}
	_, err = ntrip.Connect(context.Background(), ntrip.Config{Addr: l.Addr().String(), Mount: "AUTO", User: "rover", Password: "nope", GGA: gga})
	if se, ok := errors.AsType[*ntrip.StatusError](err); !ok || se.Code != 401 {
		t.Fatalf("bad password: %v", err)
	}
}

// TestGGAUploadedOnStream: a v1 caster that streams only after a GGA
// arrives on the connection (scripted peer; the upload is the behaviour
// under test).
func TestGGAUploadedOnStream(t *testing.T) {
	gga := "$GPGGA,120000.00,4807.0380,N,01131.0000,E,4,12,0.7,545.4,M,46.9,M,,*55"
	data := corrections(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = io.WriteString(c, "ICY 200 OK\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "$GPGGA") {
				_, _ = c.Write(data)
			}
		}
	}()
	s, err := ntrip.Connect(context.Background(), ntrip.Config{Addr: l.Addr().String(), Mount: "AUTO", Version: 1, GGA: gga, GGAInterval: 50 * time.Millisecond, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for _, err := range rtcm.Frames(s) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 18 {
			break
		}
	}
	if sent, err := s.GGASent(); sent < 2 || err != nil {
		t.Fatalf("GGA sent %d, %v", sent, err)
	}
}

func TestParseSourcetable(t *testing.T) {
	in := "CAS;caster.example;2101;EX;Example;0;DEU;48.1;11.5\r\n" +
		"NET;GEODNET;GEODNET;B;N;https://geodnet.com;;;\r\n" +
		"STR;AUTO;Nearest;RTCM 3.2;1005(10),1074(1),1084(1),1094(1),1124(1);2;GPS+GLO+GAL+BDS;GEODNET;DEU;48.12;11.52;1;1;sNTRIP;none;B;N;9600;\r\n" +
		"STR;LON;Far;RTCM 3.3;;2;GPS;NET;GBR;51.5;359.9;0;0;gen;none;N;N;;\r\n" +
		"STR;BAD;x;RTCM 3;;2;GPS;N;X;95.0;11.5;0;0\r\n" +
		"STR;GEOD01;\r\n" +
		"what is this\r\n" +
		"ENDSOURCETABLE\r\n"
	tab, err := ntrip.ParseSourcetable(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Mounts) != 3 || len(tab.Casters) != 1 || len(tab.Networks) != 1 || len(tab.Refused) != 2 {
		t.Fatalf("table = %+v", tab)
	}
	a := tab.Mounts[0]
	if a.Name != "AUTO" || !a.NeedsGGA || a.Solution != "network" || a.Lat != 48.12 || a.Bitrate != 9600 || len(a.NavSystems) != 4 || a.Auth != "B" {
		t.Fatalf("AUTO = %+v", a)
	}
	if tab.Mounts[1].Lon > -0.09 || tab.Mounts[1].Lon < -0.11 {
		t.Fatalf("a 0–360 longitude: %+v", tab.Mounts[1])
	}
	if !strings.Contains(tab.Refused[0], "latitude \"95.0\"") {
		t.Fatalf("refused = %q", tab.Refused)
	}
	if _, err := ntrip.ParseSourcetable(strings.NewReader("STR;A;\r\n")); !errors.Is(err, ntrip.ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

// FuzzSourcetable: no input panics; every mount has a name and coordinates
// in range.
func FuzzSourcetable(f *testing.F) {
	f.Add("STR;AUTO;Nearest;RTCM 3.2;1005(10);2;GPS+GLO;GEODNET;DEU;48.12;11.52;1;1;sNTRIP;none;B;N;9600;\r\nENDSOURCETABLE\r\n")
	f.Add("CAS;h;2101\r\nNET;N\r\nSTR;GEOD01;\r\nENDSOURCETABLE\r\n")
	f.Add("STR;;\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, _ := ntrip.ParseSourcetable(strings.NewReader(in))
		for _, m := range tab.Mounts {
			if m.Name == "" || m.Lat < -90 || m.Lat > 90 || m.Lon < -180 || m.Lon > 180 {
				t.Fatalf("mount %+v from %q", m, in)
			}
		}
	})
}

// TestV2Sourcetable: an NTRIP v2 caster's sourcetable comes as HTTP/1.1,
// chunked, gnss/sourcetable (net/http in the test, as in
// TestV2ChunkedWithGGA); and a v2 caster answering a stream request with
// its sourcetable means the mountpoint does not exist.
func TestV2Sourcetable(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Ntrip-Version") != "Ntrip/2.0" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "gnss/sourcetable")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "STR;AUTO;Nearest;RTCM 3.2;;2;GPS;GEODNET;DEU;48.12;11.52;1;1;x;none;B;N;9600;\r\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "STR;BASE1;Base;RTCM 3.3;;2;GPS+GAL;GEODNET;DEU;48.2;11.6;0;0;x;none;B;N;4800;\r\nENDSOURCETABLE\r\n")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	tab, err := ntrip.GetSourcetable(context.Background(), ntrip.Config{Addr: l.Addr().String()})
	if err != nil || len(tab.Mounts) != 2 || tab.Mounts[1].Name != "BASE1" || tab.Mounts[1].NeedsGGA {
		t.Fatalf("sourcetable = %+v, %v", tab, err)
	}
	if _, err := ntrip.Connect(context.Background(), ntrip.Config{Addr: l.Addr().String(), Mount: "NOPE"}); !errors.Is(err, ntrip.ErrNoMount) {
		t.Fatalf("unknown mount on v2: %v; want ErrNoMount", err)
	}
}
