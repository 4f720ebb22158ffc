package session

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/plugins/ntrip/internal/rtcm"
)

func TestGGA(t *testing.T) {
	got := GGA(Rover{Lat: -33.85, Lon: -151.2, Alt: 10, Set: true}, time.Date(2026, 12, 1, 12, 3, 4, 0, time.UTC))
	if want := "$GPGGA,120304.00,3351.0000,S,15112.0000,W,1,12,1.0,10.0,M,0.0,M,,*"; !strings.HasPrefix(got, want) {
		t.Fatalf("GGA = %q; want prefix %q", got, want)
	}
	body := got[1:strings.IndexByte(got, '*')]
	var c byte
	for i := range len(body) {
		c ^= body[i]
	}
	if sum := got[len(got)-2:]; sum != fmt.Sprintf("%02X", c) {
		t.Fatalf("checksum %s; want %02X", sum, c)
	}
	if g := GGA(Rover{Lat: 10.99999999, Lon: 0, Set: true}, time.Now()); !strings.Contains(g, ",1100.0000,N,") {
		t.Fatalf("rounding to 60 minutes: %q", g)
	}
}

// TestStateCounts: bad frames are counted by kind and never counted as
// corrections; a station updates the distance to the rover.
func TestStateCounts(t *testing.T) {
	s := NewState("c:1", "M", "", Rover{Lat: 48.1173, Lon: 11.5166, Alt: 545.4, Set: true})
	now := time.Now()
	x, y, z := rtcm.GeodeticToECEF(48.1173, 11.5166, 555.4)
	s.Frame(rtcm.Frame{Type: 1005, Payload: rtcm.EncodeStation(rtcm.Station{ID: 7, X: x, Y: y, Z: z})}, nil, now)
	s.Frame(rtcm.Frame{Type: 1005, Payload: []byte{0x3E, 0xD0}}, nil, now)
	s.Frame(rtcm.Frame{}, &rtcm.Error{Kind: rtcm.KindCRC, Msg: "x"}, now)
	st := s.Status(now.Add(2 * time.Second))
	if st.Frames != 1 || st.Bad != 2 || st.BadByKind["decode"] != 1 || st.BadByKind["crc"] != 1 || st.Station.ID != 7 || *st.Age != 2 {
		t.Fatalf("status = %+v", st)
	}
	s.bytes(1000, now)
	s.bytes(1000, now.Add(4*time.Second))
	if r := s.Status(now.Add(5 * time.Second)).BytesPerSec; r != 400 {
		t.Errorf("bytes/s = %v; want 400 (2000 bytes in 5 s)", r)
	}
	s.bytes(500, now.Add(20*time.Second)) // a new window starts
	if r := s.Status(now.Add(20*time.Second + 10*time.Millisecond)).BytesPerSec; r != 100 {
		t.Errorf("bytes/s right after a new window = %v; want the previous window's 100 (2000 bytes in 20 s)", r)
	}
	if d := *st.BaseDistance; d < 9.999 || d > 10.001 {
		t.Fatalf("distance %v; want 10 m (the base is 10 m above the rover)", d)
	}
}

// TestTCPSink forwards to a real TCP peer; a write with no peer is an
// error (counted by the session), and the sink redials once the peer is
// back.
func TestTCPSink(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	got := make(chan []byte, 4)
	serve := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 64)
				n, _ := c.Read(b)
				got <- b[:n]
			}()
		}
	}
	go serve(l)
	s := &TCPSink{Addr: addr}
	defer s.Close()
	if _, err := s.Write([]byte("frame-1")); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "frame-1" {
		t.Fatalf("peer got %q", b)
	}
	l.Close()
	s.Close()
	if _, err := s.Write([]byte("frame-2")); err == nil {
		t.Fatal("a write with no peer succeeded")
	}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer l2.Close()
	go serve(l2)
	time.Sleep(time.Second) // the sink redials at most once a second
	if _, err := s.Write([]byte("frame-3")); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "frame-3" {
		t.Fatalf("peer got %q", b)
	}
}
