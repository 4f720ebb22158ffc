package fix

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/plugins/gnss/internal/gpsd"
	"github.com/depai/depai/plugins/gnss/internal/nmea"
)

// TestTrackFile replays the shipped log (testdata/gentrack.py, dated
// 2026-12-01 by its RMCs) through the parser into a State: every epoch is
// one fix, quality climbs from none to RTK fixed, and the four bad lines
// are counted, never believed. The clock's date does not matter: the first
// GGA, before any RMC, is dated by the clock and then by its RMC, and is
// still one fix (it was two on any other day than the log's).
func TestTrackFile(t *testing.T) {
	for _, now := range []time.Time{time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), time.Date(2027, 3, 15, 0, 0, 1, 0, time.UTC)} {
		t.Run(now.Format(time.DateOnly), func(t *testing.T) { testTrackFile(t, now) })
	}
}

func testTrackFile(t *testing.T, now time.Time) {
	f, err := os.Open("../../testdata/track.nmea")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := NewState("file", 100)
	for sen, err := range nmea.Scan(f) {
		s.NMEA(sen, err, now)
	}
	st := s.Status()
	if st.Bad != 4 || st.BadByKind["checksum"] != 3 || st.BadByKind["format"] != 1 || st.Fixes != 60 || st.Good != 60*5-5*2 || st.Ignored != 55*2 {
		t.Fatalf("status = %+v; want 4 bad (3 checksum, 1 format), 60 fixes, 290 good, 110 GSV ignored", st)
	}
	track := s.Track(1000)
	if len(track) != 60 {
		t.Fatalf("track has %d fixes; want 60", len(track))
	}
	want := map[int]Quality{0: None, 4: None, 5: Fix3D, 14: Fix3D, 15: DGPS, 25: RTKFloat, 39: RTKFloat, 40: RTKFixed, 59: RTKFixed}
	for i, q := range want {
		if track[i].Quality != q {
			t.Errorf("epoch %d quality %s; want %s", i, track[i].Quality, q)
		}
	}
	for i, fx := range track {
		if wantT := time.Date(2026, 12, 1, 12, 0, i, 0, time.UTC); !fx.Time.Equal(wantT) {
			t.Errorf("epoch %d time %v; want %v", i, fx.Time, wantT)
		}
		if fx.Quality == None {
			if fx.Lat != nil || fx.Speed != nil {
				t.Errorf("epoch %d: no fix but position %v / speed %v", i, fx.Lat, fx.Speed)
			}
			continue
		}
		if math.Abs(*fx.Lat-48.1173) > 1e-5 {
			t.Errorf("epoch %d lat %v; a refused sentence leaked in", i, *fx.Lat)
		}
		if fx.Speed == nil || math.Abs(*fx.Speed-1.0) > 0.01 || fx.Heading == nil || *fx.Heading != 90 || fx.Accuracy == nil || fx.Alt == nil || *fx.Alt != 545.4 {
			t.Errorf("epoch %d = %+v; want speed 1 m/s, heading 90, alt 545.4, an accuracy", i, fx)
		}
	}
	last, _ := s.Current()
	if math.Abs(*last.Accuracy-math.Hypot(0.016, 0.012)) > 1e-9 || *last.VAccuracy != 0.03 || *last.CorrectionAge != 1 || last.Satellites != 12 {
		t.Errorf("last fix = %+v", last)
	}
	if eastward := (*track[59].Lon - *track[5].Lon) * 111320 * math.Cos(48.1173*math.Pi/180); math.Abs(eastward-54) > 0.5 {
		t.Errorf("moved %.2f m east in 54 s; want 54", eastward)
	}
}

func TestLinkLostClearsFix(t *testing.T) {
	s := NewState("tcp", 10)
	now := time.Now()
	for _, l := range []string{
		nmea.Frame("GNGGA,120000.00,4807.0380,N,01131.0000,E,4,12,0.7,545.4,M,46.9,M,1.0,0031"),
		nmea.Frame("GNVTG,90.0,T,,M,1.944,N,3.600,K,R"),
	} {
		sen, err := nmea.Parse(l)
		s.NMEA(sen, err, now)
	}
	if f, _ := s.Current(); f.Quality != RTKFixed || f.Speed == nil {
		t.Fatalf("fix = %+v", f)
	}
	s.LinkLost(errors.New("connection reset"), now)
	// A VTG on the next link must not bring the old position back.
	sen, err := nmea.Parse(nmea.Frame("GNVTG,90.0,T,,M,1.944,N,3.600,K,R"))
	s.NMEA(sen, err, now)
	f, _ := s.Current()
	st := s.Status()
	if f.Quality != None || f.HasPosition() || st.Reconnects != 1 || st.LastError != "connection reset" {
		t.Fatalf("after link loss: fix %+v status %+v", f, st)
	}
}

func TestRMCVoidClearsFix(t *testing.T) {
	var tr Tracker
	now := time.Now()
	for _, l := range []string{
		nmea.Frame("GPGGA,120000.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"),
		nmea.Frame("GPRMC,120000.00,V,4807.0380,N,01131.0000,E,,,011226,,,N"),
	} {
		sen, err := nmea.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		tr.NMEA(sen, now)
	}
	if f := tr.Current(); f.Quality != None || f.Lat != nil {
		t.Fatalf("void RMC left %+v", f)
	}
}

func TestFromTPV(t *testing.T) {
	f64 := func(x float64) *float64 { return &x }
	now := time.Now()
	tm := "2026-12-01T12:00:04.000Z"
	cases := []struct {
		tpv  gpsd.TPV
		want Quality
	}{
		{gpsd.TPV{Mode: 3, Status: 3, Time: tm, Lat: f64(48), Lon: f64(11)}, RTKFixed},
		{gpsd.TPV{Mode: 3, Status: 4, Time: tm, Lat: f64(48), Lon: f64(11)}, RTKFloat},
		{gpsd.TPV{Mode: 3, Status: 2, Time: tm, Lat: f64(48), Lon: f64(11)}, DGPS},
		{gpsd.TPV{Mode: 2, Status: 1, Time: tm, Lat: f64(48), Lon: f64(11)}, Fix2D},
		{gpsd.TPV{Mode: 3, Time: tm, Lat: f64(48), Lon: f64(11)}, Fix3D},
		{gpsd.TPV{Mode: 3, Status: 5, Time: tm, Lat: f64(48), Lon: f64(11)}, None},
		{gpsd.TPV{Mode: 1, Time: tm, Lat: f64(48), Lon: f64(11)}, None},
	}
	for _, c := range cases {
		f, ok, err := FromTPV(&c.tpv, nil, 7, now)
		if !ok || err != nil || f.Quality != c.want || (c.want == None) != (f.Lat == nil) {
			t.Errorf("FromTPV(%+v) = %+v, %v; want quality %s", c.tpv, f, ok, c.want)
		}
	}
	gst := &gpsd.GST{Time: tm, Lat: f64(0.03), Lon: f64(0.04), Alt: f64(0.05)}
	f, _, _ := FromTPV(&gpsd.TPV{Mode: 3, Status: 3, Time: tm, Lat: f64(48), Lon: f64(11), Eph: f64(24.7)}, gst, 7, now)
	if *f.Accuracy != 0.05 || *f.VAccuracy != 0.05 {
		t.Errorf("accuracy from GST: %+v", f)
	}
	if _, ok, err := FromTPV(&gpsd.TPV{Mode: 3, Time: "yesterday", Lat: f64(48), Lon: f64(11)}, nil, 0, now); ok || err == nil {
		t.Error("a fix with a bad time was accepted")
	}
	if _, ok, err := FromTPV(&gpsd.TPV{Mode: 3, Time: tm, Lat: f64(98), Lon: f64(11)}, nil, 0, now); ok || err == nil {
		t.Error("a latitude of 98 was accepted")
	}
	if f, ok, err := FromTPV(&gpsd.TPV{Mode: 3, Lat: f64(48), Lon: f64(11)}, nil, 0, now); !ok || err != nil || !f.Time.IsZero() {
		t.Errorf("a TPV with a position and no time: %+v, %v, %v; want a fix with a zero time", f, ok, err)
	}
	if _, ok, err := FromTPV(&gpsd.TPV{Mode: 3, Time: tm}, nil, 0, now); ok || err != nil {
		t.Errorf("a TPV with only error estimates: ok %v err %v; want ignored", ok, err)
	}
}

// TestUndatedTPV: gpsd's undated TPVs are dated by arrival until a dated
// one came, and ignored after, so the track stays in receiver time order.
func TestUndatedTPV(t *testing.T) {
	f64 := func(x float64) *float64 { return &x }
	s := NewState("gpsd", 10)
	now := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	tpv := func(tm string) gpsd.Report {
		return gpsd.Report{Class: "TPV", TPV: &gpsd.TPV{Mode: 3, Status: 3, Time: tm, Lat: f64(48), Lon: f64(11)}}
	}
	s.GPSD(tpv(""), nil, now)
	s.GPSD(tpv("2026-12-01T12:00:01Z"), nil, now)
	s.GPSD(tpv(""), nil, now)
	s.GPSD(tpv("2026-12-01T12:00:02Z"), nil, now)
	var times []string
	for _, f := range s.Track(10) {
		times = append(times, f.Time.Format("15:04:05"))
	}
	if got := strings.Join(times, " "); got != "17:00:00 12:00:01 12:00:02" || s.Status().Bad != 0 {
		t.Fatalf("track times %q, status %+v", got, s.Status())
	}
}
