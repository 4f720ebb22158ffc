package nmea

import (
	"math"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-7 }

func TestParseGGA(t *testing.T) {
	s, err := Parse(Frame("GNGGA,123519.50,4807.038,N,01131.000,E,4,12,0.6,545.4,M,46.9,M,1.2,0031"))
	if err != nil {
		t.Fatal(err)
	}
	g := s.(*GGA)
	if g.Talker() != "GN" || g.Quality != 4 || g.Satellites != 12 || !g.HasPosition || !g.HasAlt ||
		!near(g.Lat, 48+7.038/60) || !near(g.Lon, 11+31.0/60) || g.Alt != 545.4 || g.HDOP != 0.6 ||
		g.DGPSAge != 1.2 || g.DGPSStation != "0031" || g.Time != 12*time.Hour+35*time.Minute+19500*time.Millisecond {
		t.Fatalf("GGA = %+v", g)
	}
	s, err = Parse(Frame("GPGGA,000000,3351.000,S,15112.000,W,1,05,1.5,10.0,M,,M,,"))
	if err != nil {
		t.Fatal(err)
	}
	if g := s.(*GGA); !near(g.Lat, -(33+51.0/60)) || !near(g.Lon, -(151+12.0/60)) || g.DGPSAge != -1 {
		t.Fatalf("southern/western GGA = %+v", g)
	}
	// No fix: empty position is fine with quality 0.
	s, err = Parse(Frame("GPGGA,120000,,,,,0,00,,,M,,M,,"))
	if err != nil || s.(*GGA).HasPosition || s.(*GGA).Quality != 0 {
		t.Fatalf("no-fix GGA = %+v, %v", s, err)
	}
}

func TestParseOthers(t *testing.T) {
	s, err := Parse(Frame("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,R"))
	if err != nil {
		t.Fatal(err)
	}
	r := s.(*RMC)
	if !r.Valid || r.SpeedKnots != 22.4 || r.Course != 84.4 || !r.HasDate || r.Date != time.Date(1994, 3, 23, 0, 0, 0, 0, time.UTC) || r.Mode != "R" {
		t.Fatalf("RMC = %+v", r)
	}
	s, err = Parse(Frame("GNGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if g := s.(*GSA); g.FixType != 3 || len(g.SVs) != 5 || g.PDOP != 2.5 || g.VDOP != 2.1 {
		t.Fatalf("GSA = %+v", g)
	}
	s, err = Parse(Frame("GPGST,172814.0,0.006,0.023,0.020,273.6,0.023,0.020,0.031"))
	if err != nil {
		t.Fatal(err)
	}
	if g := s.(*GST); g.LatErr != 0.023 || g.LonErr != 0.020 || g.AltErr != 0.031 {
		t.Fatalf("GST = %+v", g)
	}
	s, err = Parse(Frame("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"))
	if err != nil {
		t.Fatal(err)
	}
	if v := s.(*VTG); v.CourseTrue != 54.7 || v.SpeedKnots != 5.5 || v.SpeedKmh != 10.2 || v.Mode != "A" {
		t.Fatalf("VTG = %+v", v)
	}
}

func TestParseBad(t *testing.T) {
	good := Frame("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
	flipped := strings.Replace(good, "4807", "4808", 1)
	cases := []struct {
		line  string
		kind  Kind
		field string
	}{
		{flipped, KindChecksum, ""},
		{strings.TrimSuffix(strings.TrimSpace(good), good[len(good)-4:len(good)-2]), KindChecksum, "checksum"},
		{"$GPGGA,123519,4807.038,N", KindChecksum, ""},
		{"GPGGA,1*00", KindFormat, ""},
		{"", KindFormat, ""},
		{Frame("GPGGA,123519,4807.038,N,01131.000,E,1,08"), KindFormat, "hdop"},
		{Frame("GPGGA,123519,9107.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), KindFormat, "latitude"},
		{Frame("GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), KindFormat, "latitude hemisphere"},
		{Frame("GPGGA,123519,4860.000,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), KindFormat, "latitude"},
		{Frame("GPGGA,253519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), KindFormat, "time"},
		{Frame("GPGGA,123519,4807.038,N,01131.000,E,9,08,0.9,545.4,M,46.9,M,,"), KindFormat, "quality"},
		{Frame("GPGGA,123519,,,,,4,08,0.9,545.4,M,46.9,M,,"), KindFormat, "latitude"},
		{Frame("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,abc,M,46.9,M,,"), KindFormat, "altitude"},
		{Frame("GPRMC,123519,Q,4807.038,N,01131.000,E,022.4,084.4,230394,,,"), KindFormat, "status"},
		{Frame("GPRMC,123519,A,4807.038,N,01131.000,E,-2,084.4,230394,,,"), KindFormat, "speed"},
		{Frame("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,,,"), KindFormat, "date"},
		{Frame("GPGSA,A,7,,,,,,,,,,,,,,,"), KindFormat, "fix type"},
		{Frame("GPGST,172814.0,0.006,0.023,0.020,273.6,-0.5,0.020,0.031"), KindFormat, "latitude error"},
		{Frame("GPVTG,400,T,,M,005.5,N,010.2,K,A"), KindFormat, "course true"},
		{Frame("GPGSV,3,1,11,03,03,111,00"), KindUnsupported, ""},
		{Frame("PUBX,00,1"), KindUnsupported, ""},
		{Frame("GPGGA,12\x01519"), KindFormat, ""},
		{"$" + strings.Repeat("A", MaxLine) + "*00", KindTooLong, ""},
	}
	for _, c := range cases {
		s, err := Parse(c.line)
		if err == nil {
			t.Errorf("Parse(%q) = %+v; want a %s error", c.line, s, c.kind)
			continue
		}
		e := err.(*Error)
		if e.Kind != c.kind || e.Field != c.field {
			t.Errorf("Parse(%q) = %v (kind %s, field %q); want kind %s field %q", c.line, err, e.Kind, e.Field, c.kind, c.field)
		}
	}
}

func TestScanResyncs(t *testing.T) {
	in := Frame("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,") +
		"garbage\x00\xff\r\n" + strings.Repeat("X", 5000) + "\n\n" +
		Frame("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A") +
		"$GPGGA,1200" // truncated at EOF
	var kinds []string
	for s, err := range Scan(strings.NewReader(in)) {
		switch {
		case err != nil:
			kinds = append(kinds, string(KindOf(err)))
		default:
			kinds = append(kinds, s.(interface{ Talker() string }).Talker()+typeName(s))
		}
	}
	want := "GPGGA format too_long GPVTG checksum"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("scan = %q; want %q", got, want)
	}
}

func typeName(s Sentence) string {
	switch s.(type) {
	case *GGA:
		return "GGA"
	case *VTG:
		return "VTG"
	}
	return "?"
}

// FuzzParse: no input panics, and whatever parses has sane values (a
// position in range, never NaN) and a valid checksum.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		Frame("GNGGA,123519.50,4807.038,N,01131.000,E,4,12,0.6,545.4,M,46.9,M,1.2,0031"),
		Frame("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,R"),
		Frame("GNGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"),
		Frame("GPGST,172814.0,0.006,0.023,0.020,273.6,0.023,0.020,0.031"),
		Frame("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"),
		"$GPGGA,*00", "$*", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, err := Parse(line)
		if err != nil {
			if s != nil {
				t.Fatalf("error %v with sentence %+v", err, s)
			}
			return
		}
		check := func(lat, lon float64, ok bool) {
			if ok && (math.IsNaN(lat) || math.Abs(lat) > 90 || math.IsNaN(lon) || math.Abs(lon) > 180) {
				t.Fatalf("%q parsed to position %v,%v", line, lat, lon)
			}
		}
		switch v := s.(type) {
		case *GGA:
			check(v.Lat, v.Lon, v.HasPosition)
			if math.IsNaN(v.Alt) || math.IsInf(v.Alt, 0) {
				t.Fatalf("%q: altitude %v", line, v.Alt)
			}
		case *RMC:
			check(v.Lat, v.Lon, v.HasPosition)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	lines := []string{
		Frame("GNGGA,123519.50,4807.038,N,01131.000,E,4,12,0.6,545.4,M,46.9,M,1.2,0031"),
		Frame("GNRMC,123519.50,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,R"),
		Frame("GNGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"),
		Frame("GNGST,123519.50,0.006,0.023,0.020,273.6,0.023,0.020,0.031"),
		Frame("GNVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Parse(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
}
