package rtcm

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
)

// A station in Munich: ECEF from its WGS84 position.
func munich() Station {
	x, y, z := GeodeticToECEF(48.1173, 11.5166, 545.4)
	return Station{ID: 2003, ITRFYear: 20, X: math.Round(x*1e4) / 1e4, Y: math.Round(y*1e4) / 1e4, Z: math.Round(z*1e4) / 1e4}
}

func frame(t testing.TB, payload []byte) []byte {
	f, err := Encode(payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCRC24Q(t *testing.T) {
	// A 1005 frame as RTKLIB's str2str relays it (RTCM 10403.3 example
	// message: station 2003, ECEF 1114104.5999, -4850729.7108, 3975521.4643).
	var w bitWriter
	w.put(1005, 12)
	w.put(2003, 12)
	w.put(0, 6)
	w.put(0b1000, 4)
	x, y, z := int64(11141045999), int64(-48507297108), int64(39755214643)
	w.put(uint64(x), 38)
	w.put(0, 2)
	w.put(uint64(y), 38)
	w.put(0, 2)
	w.put(uint64(z), 38)
	f := frame(t, w.b)
	want := []byte{0xD3, 0x00, 0x13, 0x3E, 0xD7, 0xD3, 0x02, 0x02, 0x98, 0x0E, 0xDE, 0xEF, 0x34, 0xB4, 0xBD, 0x62, 0xAC, 0x09, 0x41, 0x98, 0x6F, 0x33, 0x36, 0x0B, 0x98}
	if !bytes.Equal(f, want) {
		t.Fatalf("frame = % X\nwant    % X", f, want)
	}
	s, err := DecodeStation(w.b)
	if err != nil || s.ID != 2003 || s.X != 1114104.5999 || s.Y != -4850729.7108 || s.Z != 3975521.4643 {
		t.Fatalf("station = %+v, %v", s, err)
	}
}

func TestStationRoundTrip(t *testing.T) {
	m := munich()
	for _, h := range []float64{0, 1.5} {
		m.Height = h
		s, err := DecodeStation(EncodeStation(m))
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != 2003 || s.ITRFYear != 20 || s.Height != h || math.Abs(s.Lat-48.1173) > 1e-8 || math.Abs(s.Lon-11.5166) > 1e-8 || math.Abs(s.Alt-545.4) > 1e-3 {
			t.Fatalf("height %v: station = %+v", h, s)
		}
	}
	if _, err := DecodeStation(EncodeStation(munich())[:10]); KindOf(err) != KindLength {
		t.Fatalf("short 1005: %v", err)
	}
}

func TestMSM(t *testing.T) {
	for _, typ := range []int{1074, 1084, 1094, 1124, 1077} {
		in := MSM{Type: typ, Station: 2003, Epoch: 123456789, Multiple: true, Satellites: 9, Signals: 2}
		m, err := DecodeMSM(EncodeMSMHeader(in))
		if err != nil || m != in {
			t.Fatalf("MSM %d = %+v, %v", typ, m, err)
		}
	}
	if _, err := DecodeMSM(EncodeMSMHeader(MSM{Type: 1074, Satellites: 9, Signals: 2})[:20]); KindOf(err) != KindLength {
		t.Fatalf("short MSM: %v", err)
	}
}

func TestFramesResync(t *testing.T) {
	good := frame(t, EncodeStation(munich()))
	msm := frame(t, EncodeMSMHeader(MSM{Type: 1074, Station: 2003, Satellites: 8, Signals: 2}))
	bad := bytes.Clone(msm)
	bad[10] ^= 0x40
	var in []byte
	in = append(in, []byte("junk")...)
	in = append(in, good...)
	in = append(in, bad...)
	in = append(in, 0xD3, 0xFF, 0x00) // a preamble with reserved bits set
	in = append(in, msm...)
	in = append(in, good[:10]...) // cut off
	var got []string
	for f, err := range Frames(bytes.NewReader(in)) {
		if err != nil {
			got = append(got, string(KindOf(err)))
			continue
		}
		got = append(got, strconv.Itoa(f.Type))
	}
	if s := strings.Join(got, " "); s != "garbage 1005 crc garbage 1074 length" {
		t.Fatalf("frames = %q", s)
	}
}

// FuzzFrames: no input panics or loops; every frame yielded has a valid CRC
// and re-encodes to its raw bytes.
func FuzzFrames(f *testing.F) {
	good := frame(f, EncodeStation(munich()))
	f.Add(good)
	f.Add(append(frame(f, EncodeMSMHeader(MSM{Type: 1084, Satellites: 7, Signals: 2})), good...))
	f.Add([]byte{0xD3, 0x03, 0xFF})
	f.Add([]byte{0xD3, 0x00, 0x00, 0x47, 0xEA, 0x4B})
	f.Fuzz(func(t *testing.T, in []byte) {
		total := 0
		for fr, err := range Frames(bytes.NewReader(in)) {
			if err != nil {
				total++
				continue
			}
			re, eerr := Encode(fr.Payload)
			if eerr != nil || !bytes.Equal(re, fr.Raw) {
				t.Fatalf("frame % X re-encodes to % X", fr.Raw, re)
			}
			if IsMSM(fr.Type) {
				_, _ = DecodeMSM(fr.Payload)
			}
			if fr.Type == 1005 || fr.Type == 1006 {
				_, _ = DecodeStation(fr.Payload)
			}
			total++
		}
		if total > len(in)+1 {
			t.Fatalf("%d results from %d bytes", total, len(in))
		}
	})
}

func BenchmarkFrames(b *testing.B) {
	var stream []byte
	for _, typ := range []int{1074, 1084, 1094, 1124} {
		stream = append(stream, frame(b, EncodeMSMHeader(MSM{Type: typ, Station: 2003, Satellites: 10, Signals: 2}))...)
	}
	stream = append(stream, frame(b, EncodeStation(munich()))...)
	const per = 5
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	frames := 0
	for b.Loop() {
		for _, err := range Frames(bytes.NewReader(stream)) {
			if err != nil {
				b.Fatal(err)
			}
			frames++
		}
	}
	if frames != per*b.N {
		b.Fatalf("%d frames", frames)
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
}
