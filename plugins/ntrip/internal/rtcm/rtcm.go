// Package rtcm frames RTCM 3 correction streams — preamble 0xD3, six
// reserved bits, a 10-bit length, the message, CRC-24Q — and decodes what
// the ntrip plugin reports about them: the message type of every frame, the
// reference station's antenna position from 1005/1006, the MSM header
// (station, epoch, satellites, signals) of 1071–1137, and the station of
// 1230 (GLONASS code-phase biases).
//
// Written here because github.com/go-gnss/rtcm is not available to this
// project; framing and CRC are short, and the decoders read only header
// fields.
package rtcm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/bits"
)

// Preamble starts every frame.
const Preamble = 0xD3

// MaxPayload is the largest message a 10-bit length allows.
const MaxPayload = 1023

// Kind classifies a framing error; the plugin counts them by kind.
type Kind string

// Error kinds.
const (
	KindCRC     Kind = "crc"     // CRC-24Q mismatch
	KindLength  Kind = "length"  // reserved bits set (not a length), or a message too short for its type
	KindGarbage Kind = "garbage" // bytes between frames that are not a preamble
)

// Error is a frame or stretch of bytes that was refused.
type Error struct {
	Kind  Kind
	Bytes int // how many bytes were skipped or refused
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("rtcm %s: %s (%d bytes)", e.Kind, e.Msg, e.Bytes) }

// KindOf returns err's kind, or "" when err is not an *Error.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return ""
}

// Frame is one RTCM 3 frame whose CRC checked.
type Frame struct {
	Type    int    // message number, the first 12 bits; 0 for an empty message
	Payload []byte // the message
	Raw     []byte // the whole frame as received, for forwarding
}

var crcTable = func() (t [256]uint32) {
	const poly = 0x1864CFB
	for i := range t {
		c := uint32(i) << 16
		for range 8 {
			c <<= 1
			if c&0x1000000 != 0 {
				c ^= poly
			}
		}
		t[i] = c & 0xFFFFFF
	}
	return t
}()

// CRC24Q is the Qualcomm CRC-24 of data, as RTCM 3 computes it over
// preamble, length and message.
func CRC24Q(data []byte) uint32 {
	var c uint32
	for _, b := range data {
		c = (c<<8)&0xFFFFFF ^ crcTable[byte(c>>16)^b]
	}
	return c
}

// Encode frames a message.
func Encode(payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("rtcm: message of %d bytes; at most %d fit a frame", len(payload), MaxPayload)
	}
	f := make([]byte, 3, 3+len(payload)+3)
	f[0], f[1], f[2] = Preamble, byte(len(payload)>>8), byte(len(payload))
	f = append(f, payload...)
	c := CRC24Q(f)
	return append(f, byte(c>>16), byte(c>>8), byte(c)), nil
}

// Frames reads frames from r until it ends or fails. Bytes that are not a
// frame — garbage before a preamble, a frame whose CRC fails, a length with
// its reserved bits set — yield an *Error and reading resynchronises at the
// next preamble; a failed CRC rescans from the byte after the false
// preamble, so a real frame hidden behind it is not lost. A read error
// other than io.EOF is yielded last; a frame cut off by the end is a
// KindLength error.
func Frames(r io.Reader) iter.Seq2[Frame, error] {
	return func(yield func(Frame, error) bool) {
		br := bufio.NewReaderSize(r, 4*(MaxPayload+6))
		// garbage counts skipped bytes; reported is how many of the bytes
		// ahead already were, as part of a frame refused for its CRC.
		garbage, reported := 0, 0
		skip := func() {
			if reported > 0 {
				reported--
			} else {
				garbage++
			}
		}
		flush := func() bool {
			if garbage == 0 {
				return true
			}
			n := garbage
			garbage = 0
			return yield(Frame{}, &Error{Kind: KindGarbage, Bytes: n, Msg: "bytes outside any frame"})
		}
		for {
			b, err := br.ReadByte()
			if err != nil {
				if flush() && err != io.EOF {
					yield(Frame{}, err)
				}
				return
			}
			if b != Preamble {
				skip()
				continue
			}
			hdr, err := br.Peek(2)
			if err != nil {
				skip()
				continue // the loop's next ReadByte ends the stream
			}
			if hdr[0]&0xFC != 0 {
				skip() // a 0xD3 inside garbage; keep scanning
				continue
			}
			n := int(hdr[0]&0x03)<<8 | int(hdr[1])
			rest, err := br.Peek(2 + n + 3)
			if err != nil {
				if !flush() {
					return
				}
				if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
					yield(Frame{}, &Error{Kind: KindLength, Bytes: 1 + len(rest), Msg: fmt.Sprintf("stream ended inside a frame of length %d", n)})
				} else {
					yield(Frame{}, err)
				}
				return
			}
			raw := make([]byte, 1+len(rest))
			raw[0] = Preamble
			copy(raw[1:], rest)
			body := raw[:3+n]
			want := uint32(raw[3+n])<<16 | uint32(raw[4+n])<<8 | uint32(raw[5+n])
			if CRC24Q(body) != want {
				if reported > 0 {
					// A false preamble inside a frame already refused.
					reported--
					continue
				}
				if !flush() || !yield(Frame{}, &Error{Kind: KindCRC, Bytes: len(raw), Msg: fmt.Sprintf("CRC-24Q mismatch on a frame of length %d", n)}) {
					return
				}
				reported = len(raw) - 1
				continue // rescan from the byte after this preamble
			}
			if _, err := br.Discard(len(rest)); err != nil {
				yield(Frame{}, err)
				return
			}
			if !flush() {
				return
			}
			reported = 0
			f := Frame{Payload: raw[3 : 3+n], Raw: raw}
			if n >= 2 {
				f.Type = int(raw[3])<<4 | int(raw[4])>>4
			}
			if !yield(f, nil) {
				return
			}
		}
	}
}

// bitReader reads big-endian bit fields from a message.
type bitReader struct {
	b   []byte
	pos int
	bad bool
}

func (r *bitReader) u(n int) uint64 {
	if r.pos+n > len(r.b)*8 {
		r.bad = true
		r.pos += n
		return 0
	}
	var v uint64
	for range n {
		v = v<<1 | uint64(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

func (r *bitReader) s(n int) int64 {
	v := r.u(n)
	if v&(1<<(n-1)) != 0 {
		return int64(v) - int64(1)<<n
	}
	return int64(v)
}

// Station is a reference station's antenna reference point, from 1005 or
// 1006: ECEF metres and the same as WGS84 latitude, longitude, height.
type Station struct {
	ID       int     `json:"id"`
	ITRFYear int     `json:"itrf_year"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	Z        float64 `json:"z"`
	Height   float64 `json:"antenna_height,omitempty"` // 1006 only, metres
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Alt      float64 `json:"alt" jsonschema:"height above the WGS84 ellipsoid, metres"`
}

func tooShort(typ, n, need int) error {
	return &Error{Kind: KindLength, Bytes: n, Msg: fmt.Sprintf("message %d of %d bytes; at least %d expected", typ, n, need)}
}

// DecodeStation decodes a 1005 or 1006 message.
func DecodeStation(payload []byte) (Station, error) {
	r := bitReader{b: payload}
	typ := int(r.u(12))
	if typ != 1005 && typ != 1006 {
		return Station{}, fmt.Errorf("rtcm: message %d is not 1005 or 1006", typ)
	}
	need := 19
	if typ == 1006 {
		need = 21
	}
	if len(payload) < need {
		return Station{}, tooShort(typ, len(payload), need)
	}
	s := Station{ID: int(r.u(12)), ITRFYear: int(r.u(6))}
	r.u(4) // GPS, GLONASS, Galileo, reference-station indicators
	s.X = float64(r.s(38)) / 1e4
	r.u(2) // single receiver oscillator, reserved
	s.Y = float64(r.s(38)) / 1e4
	r.u(2) // quarter cycle indicator
	s.Z = float64(r.s(38)) / 1e4
	if typ == 1006 {
		s.Height = float64(r.u(16)) / 1e4
	}
	if r.bad {
		return Station{}, tooShort(typ, len(payload), need)
	}
	s.Lat, s.Lon, s.Alt = ECEFToGeodetic(s.X, s.Y, s.Z)
	return s, nil
}

// EncodeStation builds a 1005 message (a 1006 when height > 0) for s's ID,
// ITRF year and ECEF position: what a base station sends, and what the
// tests feed a caster.
func EncodeStation(s Station) []byte {
	var w bitWriter
	typ := 1005
	if s.Height > 0 {
		typ = 1006
	}
	w.put(uint64(typ), 12)
	w.put(uint64(s.ID), 12)
	w.put(uint64(s.ITRFYear), 6)
	w.put(0b1111, 4)
	w.put(uint64(int64(math.Round(s.X*1e4))), 38)
	w.put(0, 2)
	w.put(uint64(int64(math.Round(s.Y*1e4))), 38)
	w.put(0, 2)
	w.put(uint64(int64(math.Round(s.Z*1e4))), 38)
	if typ == 1006 {
		w.put(uint64(math.Round(s.Height*1e4)), 16)
	}
	return w.b
}

type bitWriter struct {
	b []byte
	n int
}

func (w *bitWriter) put(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[w.n/8] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
}

// MSM is the header of a multiple signal message (1071–1137).
type MSM struct {
	Type       int    `json:"type"`
	Station    int    `json:"station"`
	Epoch      uint32 `json:"epoch" jsonschema:"GNSS epoch time field as sent (ms of week for GPS/Galileo/BeiDou)"`
	Multiple   bool   `json:"multiple"`
	Satellites int    `json:"satellites"`
	Signals    int    `json:"signals"`
}

// IsMSM reports whether typ is a multiple signal message.
func IsMSM(typ int) bool { return typ >= 1071 && typ <= 1137 && typ%10 >= 1 && typ%10 <= 7 }

// DecodeMSM decodes an MSM header.
func DecodeMSM(payload []byte) (MSM, error) {
	r := bitReader{b: payload}
	m := MSM{Type: int(r.u(12))}
	if !IsMSM(m.Type) {
		return MSM{}, fmt.Errorf("rtcm: message %d is not an MSM", m.Type)
	}
	m.Station = int(r.u(12))
	m.Epoch = uint32(r.u(30))
	m.Multiple = r.u(1) == 1
	r.u(3 + 7 + 2 + 2 + 1 + 3) // IODS, reserved, clock steering, external clock, smoothing
	sats := r.u(64)
	sigs := uint32(r.u(32))
	m.Satellites, m.Signals = bits.OnesCount64(sats), bits.OnesCount32(sigs)
	if m.Satellites*m.Signals > 64 {
		return MSM{}, &Error{Kind: KindLength, Bytes: len(payload), Msg: fmt.Sprintf("MSM %d with %d satellites × %d signals; at most 64 cells", m.Type, m.Satellites, m.Signals)}
	}
	r.u(m.Satellites * m.Signals) // cell mask
	if r.bad {
		return MSM{}, tooShort(m.Type, len(payload), (r.pos+7)/8)
	}
	return m, nil
}

// EncodeMSMHeader builds an MSM header with no observations — enough for
// the framer and the message counters, and what the tests feed a caster.
func EncodeMSMHeader(m MSM) []byte {
	var w bitWriter
	w.put(uint64(m.Type), 12)
	w.put(uint64(m.Station), 12)
	w.put(uint64(m.Epoch), 30)
	mult := uint64(0)
	if m.Multiple {
		mult = 1
	}
	w.put(mult, 1)
	w.put(0, 3+7+2+2+1+3)
	w.put(^uint64(0)>>(64-m.Satellites)<<(64-m.Satellites), 64)
	w.put(uint64(^uint32(0)>>(32-m.Signals)<<(32-m.Signals)), 32)
	w.put(^uint64(0), m.Satellites*m.Signals)
	return w.b
}

// DecodeBiasStation returns the station of a 1230 message.
func DecodeBiasStation(payload []byte) (int, error) {
	r := bitReader{b: payload}
	if typ := int(r.u(12)); typ != 1230 {
		return 0, fmt.Errorf("rtcm: message %d is not 1230", typ)
	}
	id := int(r.u(12))
	if r.bad || len(payload) < 4 {
		return 0, tooShort(1230, len(payload), 4)
	}
	return id, nil
}

// WGS84.
const (
	wgsA = 6378137.0
	wgsF = 1 / 298.257223563
)

// ECEFToGeodetic converts ECEF metres to WGS84 latitude and longitude in
// degrees and height above the ellipsoid in metres (Bowring's method,
// millimetre-exact at the Earth's surface).
func ECEFToGeodetic(x, y, z float64) (lat, lon, h float64) {
	e2 := wgsF * (2 - wgsF)
	b := wgsA * (1 - wgsF)
	ep2 := (wgsA*wgsA - b*b) / (b * b)
	p := math.Hypot(x, y)
	if p < 1e-9 && math.Abs(z) < 1e-9 {
		return 0, 0, -wgsA
	}
	th := math.Atan2(z*wgsA, p*b)
	sin, cos := math.Sincos(th)
	phi := math.Atan2(z+ep2*b*sin*sin*sin, p-e2*wgsA*cos*cos*cos)
	n := wgsA / math.Sqrt(1-e2*math.Sin(phi)*math.Sin(phi))
	if math.Abs(math.Cos(phi)) > 1e-12 {
		h = p/math.Cos(phi) - n
	} else {
		h = math.Abs(z) - b
	}
	return phi * 180 / math.Pi, math.Atan2(y, x) * 180 / math.Pi, h
}

// GeodeticToECEF is the inverse of ECEFToGeodetic.
func GeodeticToECEF(lat, lon, h float64) (x, y, z float64) {
	e2 := wgsF * (2 - wgsF)
	sp, cp := math.Sincos(lat * math.Pi / 180)
	sl, cl := math.Sincos(lon * math.Pi / 180)
	n := wgsA / math.Sqrt(1-e2*sp*sp)
	return (n + h) * cp * cl, (n + h) * cp * sl, (n*(1-e2) + h) * sp
}

// Distance is the straight-line distance in metres between two WGS84
// positions (degrees, metres above the ellipsoid) — what "distance to the
// base" means for RTK baselines.
func Distance(lat1, lon1, h1, lat2, lon2, h2 float64) float64 {
	x1, y1, z1 := GeodeticToECEF(lat1, lon1, h1)
	x2, y2, z2 := GeodeticToECEF(lat2, lon2, h2)
	return math.Sqrt((x1-x2)*(x1-x2) + (y1-y2)*(y1-y2) + (z1-z2)*(z1-z2))
}
