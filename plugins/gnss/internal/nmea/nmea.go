// Package nmea parses the NMEA 0183 sentences a GNSS receiver reports its
// fix with: GGA (position, fix quality, satellites, altitude), RMC (validity,
// date, speed, course), GSA (2D/3D, DOPs), GST (error estimates) and VTG
// (course and speed). Every sentence must carry a checksum and it is
// verified: a sentence without one is refused rather than trusted, because a
// line corrupted on a serial link would otherwise move the robot on the map.
//
// The parser is ours rather than github.com/adrianmo/go-nmea so that bad
// input is reported by kind (checksum, format, unsupported, too long) — what
// the plugin counts in gnss.status — and so that it is fuzzed here.
package nmea

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxLine bounds a sentence. NMEA 0183 allows 82 characters; receivers
// exceed that with long talker extensions, so some slack is allowed, but a
// line longer than this is garbage (two sentences run together, binary
// data) and is refused instead of buffered.
const MaxLine = 256

// Kind classifies a parse error; the plugin counts errors by kind.
type Kind string

// Error kinds.
const (
	KindChecksum    Kind = "checksum"    // checksum missing or wrong
	KindFormat      Kind = "format"      // framing or a field that does not parse
	KindUnsupported Kind = "unsupported" // a well-formed sentence of a type we do not read
	KindTooLong     Kind = "too_long"    // longer than MaxLine
)

// Error is a sentence that was refused. It names the sentence type and, for
// a field, the field and its value.
type Error struct {
	Kind     Kind
	Sentence string // e.g. "GPGGA"; empty when the framing is broken
	Field    string // e.g. "latitude"; empty when not about one field
	Value    string
	Msg      string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("nmea")
	if e.Sentence != "" {
		b.WriteString(" " + e.Sentence)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " field %s %q", e.Field, e.Value)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// KindOf returns err's kind, or "" when err is not an *Error.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return ""
}

// Sentence is one parsed sentence: *GGA, *RMC, *GSA, *GST or *VTG.
type Sentence interface {
	// Talker is the two-letter source: GP (GPS), GN (multi-constellation),
	// GL, GA, GB …
	Talker() string
}

// Header is what every sentence carries.
type Header struct {
	TalkerID string
	Type     string // GGA, RMC …
}

// Talker implements Sentence.
func (h Header) Talker() string { return h.TalkerID }

// GGA is the fix: position, quality, satellites in use, altitude.
type GGA struct {
	Header
	Time        time.Duration // since midnight UTC; -1 when empty
	Lat, Lon    float64       // degrees; valid when HasPosition
	HasPosition bool
	Quality     int // 0 none, 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float, 6 estimated, 7 manual, 8 simulated
	Satellites  int // in use
	HDOP        float64
	Alt         float64 // metres above mean sea level; valid when HasAlt
	HasAlt      bool
	GeoidSep    float64 // metres, geoid above the WGS84 ellipsoid
	DGPSAge     float64 // seconds; -1 when empty
	DGPSStation string
}

// RMC is the recommended minimum: validity, position, speed, course, date.
type RMC struct {
	Header
	Time        time.Duration // since midnight UTC; -1 when empty
	Valid       bool          // status A
	Lat, Lon    float64
	HasPosition bool
	SpeedKnots  float64 // -1 when empty
	Course      float64 // degrees true; -1 when empty
	Date        time.Time
	HasDate     bool
	Mode        string // NMEA 2.3 mode: A autonomous, D differential, R RTK fixed, F RTK float, N not valid …
}

// GSA is the DOP and active satellites.
type GSA struct {
	Header
	Selection        string // A automatic, M manual
	FixType          int    // 1 none, 2 2D, 3 3D
	SVs              []string
	PDOP, HDOP, VDOP float64 // 0 when empty
}

// GST is the pseudorange error statistics: 1-sigma errors in metres; -1
// when the receiver leaves a field empty.
type GST struct {
	Header
	Time                   time.Duration
	RMS                    float64
	SemiMajor, SemiMinor   float64
	Orientation            float64
	LatErr, LonErr, AltErr float64
}

// VTG is course over ground and ground speed.
type VTG struct {
	Header
	CourseTrue float64 // -1 when empty
	SpeedKnots float64 // -1 when empty
	SpeedKmh   float64 // -1 when empty
	Mode       string
}

// Parse parses one sentence, with or without its line ending.
func Parse(line string) (Sentence, error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) > MaxLine {
		return nil, &Error{Kind: KindTooLong, Msg: fmt.Sprintf("%d bytes; at most %d expected", len(line), MaxLine)}
	}
	if line == "" || line[0] != '$' {
		return nil, &Error{Kind: KindFormat, Msg: fmt.Sprintf("sentence %q does not start with '$'", clip(line))}
	}
	star := strings.LastIndexByte(line, '*')
	if star < 0 {
		return nil, &Error{Kind: KindChecksum, Msg: fmt.Sprintf("sentence %q has no *checksum", clip(line))}
	}
	body, sum := line[1:star], line[star+1:]
	want, err := strconv.ParseUint(sum, 16, 8)
	if err != nil || len(sum) != 2 {
		return nil, &Error{Kind: KindChecksum, Field: "checksum", Value: sum, Msg: "want two hex digits"}
	}
	if got := Checksum(body); got != byte(want) {
		return nil, &Error{Kind: KindChecksum, Value: sum, Msg: fmt.Sprintf("checksum %02X does not match the sentence's %02X", want, got)}
	}
	for i := 0; i < len(body); i++ {
		if c := body[i]; c < 0x20 || c > 0x7e {
			return nil, &Error{Kind: KindFormat, Msg: fmt.Sprintf("byte 0x%02x at %d is not printable ASCII", c, i+1)}
		}
	}
	f := strings.Split(body, ",")
	addr := f[0]
	if len(addr) != 5 || addr[0] == 'P' {
		return nil, &Error{Kind: KindUnsupported, Sentence: addr, Msg: "not a standard talker sentence"}
	}
	p := &fields{h: Header{TalkerID: addr[:2], Type: addr[2:]}, f: f[1:]}
	name := addr
	var s Sentence
	switch p.h.Type {
	case "GGA":
		s = p.gga()
	case "RMC":
		s = p.rmc()
	case "GSA":
		s = p.gsa()
	case "GST":
		s = p.gst()
	case "VTG":
		s = p.vtg()
	default:
		return nil, &Error{Kind: KindUnsupported, Sentence: name, Msg: "sentence type not read"}
	}
	if p.err != nil {
		p.err.Sentence = name
		return nil, p.err
	}
	return s, nil
}

// Checksum is the XOR of the bytes between '$' and '*'.
func Checksum(body string) byte {
	var c byte
	for i := 0; i < len(body); i++ {
		c ^= body[i]
	}
	return c
}

// Frame adds '$', the checksum and CRLF to a sentence body such as
// "GPGGA,…" — for writing GGA upstream (NTRIP) and for tests.
func Frame(body string) string {
	return fmt.Sprintf("$%s*%02X\r\n", body, Checksum(body))
}

// Scan reads sentences line by line from r until r ends or fails. A bad
// line yields its *Error and scanning goes on; a read error ends the
// sequence after yielding it (io.EOF is not yielded). An over-long line is
// yielded as KindTooLong and skipped to its end, so scanning resynchronises
// on the next line.
func Scan(r io.Reader) iter.Seq2[Sentence, error] {
	return func(yield func(Sentence, error) bool) {
		br := bufio.NewReaderSize(r, 4096)
		for {
			line, err := readLine(br)
			if line != "" || err == errLong {
				var s Sentence
				var perr error
				if err == errLong {
					perr = &Error{Kind: KindTooLong, Msg: fmt.Sprintf("line longer than %d bytes", MaxLine)}
				} else {
					s, perr = Parse(line)
				}
				if !yield(s, perr) {
					return
				}
				if err == errLong {
					continue
				}
			}
			if err != nil {
				if err != io.EOF {
					yield(nil, err)
				}
				return
			}
		}
	}
}

var errLong = errors.New("line too long")

// readLine returns the next non-empty line without its ending. A line over
// MaxLine is consumed to its end and reported as errLong.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	long := false
	for {
		frag, err := br.ReadSlice('\n')
		if !long {
			b = append(b, frag...)
			if len(b) > MaxLine+2 {
				long, b = true, nil
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if long && (err == nil || err == io.EOF) {
			return "", errLong
		}
		line := strings.TrimRight(string(b), "\r\n")
		if err != nil {
			return line, err
		}
		if line != "" {
			return line, nil
		}
		b = b[:0]
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// fields reads a sentence's comma-separated fields in order, remembering the
// first error so each parser reads straight through.
type fields struct {
	h   Header
	f   []string
	i   int
	err *Error
}

func (p *fields) next(name string) string {
	if p.i >= len(p.f) {
		if p.err == nil {
			p.err = &Error{Kind: KindFormat, Field: name, Msg: fmt.Sprintf("sentence ends after %d fields", len(p.f))}
		}
		p.i++
		return ""
	}
	v := p.f[p.i]
	p.i++
	return v
}

// optional reads a field that older receivers may leave off the end.
func (p *fields) optional() string {
	if p.i >= len(p.f) {
		p.i++
		return ""
	}
	v := p.f[p.i]
	p.i++
	return v
}

func (p *fields) fail(name, v, msg string) {
	if p.err == nil {
		p.err = &Error{Kind: KindFormat, Field: name, Value: v, Msg: msg}
	}
}

// float reads a number; empty yields def.
func (p *fields) float(name string, def float64) float64 {
	v := p.next(name)
	if v == "" {
		return def
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		p.fail(name, v, "want a decimal number")
		return def
	}
	return x
}

// nonneg reads a number that cannot be negative (an error, a speed);
// empty yields -1.
func (p *fields) nonneg(name string) float64 {
	v := p.next(name)
	if v == "" {
		return -1
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		p.fail(name, v, "want a non-negative decimal number")
		return -1
	}
	return x
}

// course reads degrees in [0, 360]; empty yields -1.
func (p *fields) course(name string) float64 {
	x := p.nonneg(name)
	if x > 360 {
		p.fail(name, strconv.FormatFloat(x, 'f', -1, 64), "want degrees 0-360")
		return -1
	}
	return x
}

func (p *fields) int(name string, def int) int {
	v := p.next(name)
	if v == "" {
		return def
	}
	x, err := strconv.Atoi(v)
	if err != nil || x < 0 {
		p.fail(name, v, "want a non-negative integer")
		return def
	}
	return x
}

// clock reads hhmmss(.sss) as a duration since midnight; empty yields -1.
func (p *fields) clock(name string) time.Duration {
	v := p.next(name)
	if v == "" {
		return -1
	}
	if len(v) < 6 {
		p.fail(name, v, "want hhmmss.ss")
		return -1
	}
	h, e1 := strconv.Atoi(v[0:2])
	m, e2 := strconv.Atoi(v[2:4])
	s, e3 := strconv.ParseFloat(v[4:], 64)
	if e1 != nil || e2 != nil || e3 != nil || h > 23 || m > 59 || s < 0 || s >= 61 || v[4] == '+' || v[4] == '-' {
		p.fail(name, v, "want hhmmss.ss")
		return -1
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s*float64(time.Second))
}

// coord reads ddmm.mmmm (deg digits wide) and its hemisphere letter.
func (p *fields) coord(name string, deg int, pos, neg byte) (float64, bool) {
	v, hemi := p.next(name), p.next(name+" hemisphere")
	if v == "" && hemi == "" {
		return 0, false
	}
	if len(v) < deg+2 || v[deg] == '.' {
		p.fail(name, v, fmt.Sprintf("want %sdmm.mmmm", strings.Repeat("d", deg-1)))
		return 0, false
	}
	d, e1 := strconv.Atoi(v[:deg])
	m, e2 := strconv.ParseFloat(v[deg:], 64)
	if e1 != nil || e2 != nil || d < 0 || m < 0 || m >= 60 || v[deg] == '+' || v[deg] == '-' {
		p.fail(name, v, fmt.Sprintf("want %sdmm.mmmm", strings.Repeat("d", deg-1)))
		return 0, false
	}
	x := float64(d) + m/60
	if x > float64(deg-1)*90 { // 90 for latitude, 180 for longitude
		p.fail(name, v, fmt.Sprintf("out of range (at most %d degrees)", (deg-1)*90))
		return 0, false
	}
	switch {
	case len(hemi) == 1 && hemi[0] == pos:
	case len(hemi) == 1 && hemi[0] == neg:
		x = -x
	default:
		p.fail(name+" hemisphere", hemi, fmt.Sprintf("want %c or %c", pos, neg))
		return 0, false
	}
	return x, true
}

func (p *fields) gga() *GGA {
	g := &GGA{Header: p.h}
	g.Time = p.clock("time")
	lat, ok1 := p.coord("latitude", 2, 'N', 'S')
	lon, ok2 := p.coord("longitude", 3, 'E', 'W')
	g.Lat, g.Lon, g.HasPosition = lat, lon, ok1 && ok2
	g.Quality = p.int("quality", 0)
	if g.Quality > 8 {
		p.fail("quality", strconv.Itoa(g.Quality), "want 0-8")
	}
	g.Satellites = p.int("satellites", 0)
	g.HDOP = max(p.nonneg("hdop"), 0)
	altField := p.next("altitude")
	if altField != "" {
		x, err := strconv.ParseFloat(altField, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			p.fail("altitude", altField, "want a decimal number")
		}
		g.Alt, g.HasAlt = x, err == nil
	}
	if u := p.next("altitude unit"); u != "" && u != "M" {
		p.fail("altitude unit", u, "want M")
	}
	g.GeoidSep = p.float("geoid separation", 0)
	if u := p.next("separation unit"); u != "" && u != "M" {
		p.fail("separation unit", u, "want M")
	}
	g.DGPSAge = -1
	if v := p.optional(); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 {
			p.fail("dgps age", v, "want seconds")
		}
		g.DGPSAge = x
	}
	g.DGPSStation = p.optional()
	if g.Quality > 0 && !g.HasPosition {
		p.fail("latitude", "", fmt.Sprintf("empty although quality is %d", g.Quality))
	}
	return g
}

func (p *fields) rmc() *RMC {
	r := &RMC{Header: p.h}
	r.Time = p.clock("time")
	switch st := p.next("status"); st {
	case "A":
		r.Valid = true
	case "V":
	default:
		p.fail("status", st, "want A or V")
	}
	lat, ok1 := p.coord("latitude", 2, 'N', 'S')
	lon, ok2 := p.coord("longitude", 3, 'E', 'W')
	r.Lat, r.Lon, r.HasPosition = lat, lon, ok1 && ok2
	r.SpeedKnots = p.nonneg("speed")
	r.Course = p.course("course")
	if d := p.next("date"); d != "" {
		t, err := time.Parse("020106", d)
		if err != nil {
			p.fail("date", d, "want ddmmyy")
		}
		r.Date, r.HasDate = t, err == nil
	}
	p.optional() // magnetic variation
	p.optional() // its direction
	r.Mode = p.optional()
	if r.Valid && !r.HasPosition {
		p.fail("latitude", "", "empty although status is A")
	}
	return r
}

func (p *fields) gsa() *GSA {
	g := &GSA{Header: p.h}
	g.Selection = p.next("selection")
	g.FixType = p.int("fix type", 1)
	if g.FixType < 1 || g.FixType > 3 {
		p.fail("fix type", strconv.Itoa(g.FixType), "want 1, 2 or 3")
	}
	for i := range 12 {
		if sv := p.next(fmt.Sprintf("satellite %d", i+1)); sv != "" {
			g.SVs = append(g.SVs, sv)
		}
	}
	g.PDOP = p.float("pdop", 0)
	g.HDOP = p.float("hdop", 0)
	g.VDOP = p.float("vdop", 0)
	return g
}

func (p *fields) gst() *GST {
	g := &GST{Header: p.h}
	g.Time = p.clock("time")
	g.RMS = p.nonneg("rms")
	g.SemiMajor = p.nonneg("semi-major error")
	g.SemiMinor = p.nonneg("semi-minor error")
	g.Orientation = p.float("orientation", -1)
	g.LatErr = p.nonneg("latitude error")
	g.LonErr = p.nonneg("longitude error")
	g.AltErr = p.nonneg("altitude error")
	return g
}

func (p *fields) vtg() *VTG {
	v := &VTG{Header: p.h}
	v.CourseTrue = p.course("course true")
	p.next("T")
	p.next("course magnetic")
	p.next("M")
	v.SpeedKnots = p.nonneg("speed knots")
	p.next("N")
	v.SpeedKmh = p.nonneg("speed km/h")
	p.next("K")
	v.Mode = p.optional()
	return v
}
