package gpsd_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/plugins/gnss/internal/gpsd"
	"github.com/depai/depai/plugins/gnss/internal/gpsfake"
	"github.com/depai/depai/plugins/internal/backoff"
)

// TestWatchRealGPSD reads a real gpsd (through gpsfake) replaying the
// shipped log: VERSION first, then TPVs up to RTK fixed with positions on
// the track, and SKY/GST along the way.
func TestWatchRealGPSD(t *testing.T) {
	addr, _ := gpsfake.Start(t, "../../testdata/track.nmea", 0.005, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	classes := map[string]int{}
	statuses := map[int]bool{}
	for r, err := range gpsd.Watch(ctx, conn) {
		if err != nil {
			t.Fatal(err)
		}
		classes[r.Class]++
		if r.Class == "TPV" && r.TPV.Mode >= 2 && r.TPV.Lat != nil {
			statuses[r.TPV.Status] = true
			if r.TPV.Lat == nil || *r.TPV.Lat < 48.117 || *r.TPV.Lat > 48.118 {
				t.Fatalf("TPV off the track: %s", r.Raw)
			}
		}
		if statuses[3] && statuses[4] && statuses[2] && classes["GST"] > 0 {
			break
		}
	}
	if classes["VERSION"] != 1 || !statuses[3] {
		t.Fatalf("classes %v statuses %v; want VERSION and RTK fixed (status 3)", classes, statuses)
	}
}

// TestStreamReconnects kills gpsd under a Stream and starts it again on the
// same port: the stream reports the lost link and delivers reports again.
func TestStreamReconnects(t *testing.T) {
	port := gpsfake.FreePort(t)
	addr, stop := gpsfake.Start(t, "../../testdata/track.nmea", 0.005, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	phase, linkErrs := 0, 0
	for r, err := range gpsd.Stream(ctx, gpsd.Config{Addr: addr, Backoff: backoff.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}}) {
		if _, ok := errors.AsType[*gpsd.LinkError](err); ok {
			linkErrs++
			if phase == 1 && linkErrs == 1 {
				_, stop = gpsfake.Start(t, "../../testdata/track.nmea", 0.005, port)
				phase = 2
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Class == "TPV" {
			switch phase {
			case 0:
				stop()
				phase = 1
			case 2:
				if linkErrs == 0 {
					t.Fatal("no link error reported")
				}
				return
			}
		}
	}
	t.Fatalf("stream ended in phase %d: %v", phase, ctx.Err())
}

// TestWatchBadLines: a non-JSON line and a line without class are counted
// errors; reading goes on; the end of the connection is a LinkError.
func TestWatchBadLines(t *testing.T) {
	// An in-test peer speaking gpsd's line protocol with scripted content:
	// real gpsd never sends garbage, so this is where garbage comes from.
	srv, cli := net.Pipe()
	go func() {
		buf := make([]byte, len(gpsd.WatchCommand))
		_, _ = srv.Read(buf)
		_, _ = srv.Write([]byte("<html>\n{\"nope\":1}\n{\"class\":\"TPV\",\"mode\":3,\"lat\":\"north\"}\n" + `{"class":"TPV","mode":3,"status":3,"time":"2026-12-01T12:00:00Z","lat":1,"lon":2}` + "\n"))
		srv.Close()
	}()
	var got []string
	for r, err := range gpsd.Watch(context.Background(), cli) {
		switch e := err.(type) {
		case nil:
			got = append(got, r.Class)
		case *gpsd.DecodeError:
			got = append(got, "bad")
		case *gpsd.LinkError:
			got = append(got, "link:"+e.Op)
		default:
			t.Fatal(err)
		}
	}
	if s := strings.Join(got, " "); s != "bad bad bad TPV link:read" {
		t.Fatalf("got %q", s)
	}
}
