// Package fix turns what a receiver says — NMEA sentences or gpsd reports —
// into one Fix: the position reading the gnss plugin stores and the agent
// keeps each robot's latest pose from. Tracker merges one receiver's
// sentences; State adds the counters, the track and the link state the
// plugin's tools show, safe for the reader goroutine and the tools at once.
//
// A fix is never better than its weakest evidence: an RMC saying "void" or
// a GGA with quality 0 clears the position, an estimated (dead reckoning),
// manual or simulated fix counts as none, and an error estimate is attached
// only when it is for the same epoch.
package fix

import (
	"fmt"
	"math"
	"time"

	"github.com/depai/depai/plugins/gnss/internal/gpsd"
	"github.com/depai/depai/plugins/gnss/internal/nmea"
)

// Quality is the fix quality, worst to best.
type Quality string

// Qualities. The policy compares them by Rank.
const (
	None     Quality = "none"
	Fix2D    Quality = "2d"
	Fix3D    Quality = "3d"
	DGPS     Quality = "dgps"
	RTKFloat Quality = "rtk_float"
	RTKFixed Quality = "rtk_fixed"
)

// Rank orders qualities: none 0, 2d 1, 3d 2, dgps 3, rtk_float 4,
// rtk_fixed 5; an unknown string is -1.
func (q Quality) Rank() int {
	switch q {
	case None:
		return 0
	case Fix2D:
		return 1
	case Fix3D:
		return 2
	case DGPS:
		return 3
	case RTKFloat:
		return 4
	case RTKFixed:
		return 5
	}
	return -1
}

// Fix is one position reading. Its JSON is the gnss.fix sensor's reading
// and gnss.position's answer. Lat, Lon and Alt are absent when Quality is
// none; other optional fields are absent when the receiver did not say.
type Fix struct {
	Time       time.Time `json:"time" jsonschema:"receiver UTC time of the fix"`
	Quality    Quality   `json:"quality" jsonschema:"none, 2d, 3d, dgps, rtk_float or rtk_fixed"`
	Lat        *float64  `json:"lat,omitempty" jsonschema:"WGS84 latitude, degrees north"`
	Lon        *float64  `json:"lon,omitempty" jsonschema:"WGS84 longitude, degrees east"`
	Alt        *float64  `json:"alt,omitempty" jsonschema:"altitude above mean sea level, metres"`
	Accuracy   *float64  `json:"accuracy,omitempty" jsonschema:"horizontal 1-sigma error estimate, metres"`
	VAccuracy  *float64  `json:"vertical_accuracy,omitempty" jsonschema:"vertical 1-sigma error estimate, metres"`
	Speed      *float64  `json:"speed,omitempty" jsonschema:"ground speed, metres per second"`
	Heading    *float64  `json:"heading,omitempty" jsonschema:"course over ground, degrees true"`
	Satellites int       `json:"satellites" jsonschema:"satellites used in the fix"`
	HDOP       *float64  `json:"hdop,omitempty"`
	// CorrectionAge is the age of the differential corrections (DGPS/RTK).
	CorrectionAge *float64  `json:"correction_age,omitempty" jsonschema:"age of differential corrections, seconds"`
	Received      time.Time `json:"received" jsonschema:"when the plugin received the fix"`
}

// HasPosition reports whether the fix carries a position.
func (f Fix) HasPosition() bool { return f.Lat != nil && f.Lon != nil && f.Quality.Rank() > 0 }

// Tracker merges one receiver's NMEA sentences into fixes. It is not safe
// for concurrent use; State guards one.
type Tracker struct {
	cur      Fix
	tod      time.Duration // time of day of cur, -1 unknown
	date     time.Time     // last RMC date
	gsaFix   int           // last GSA fix type, 0 unknown
	gst      *nmea.GST
	speedSet bool
	// epoch counts the epochs cur has described, so that an epoch whose
	// first sentence was dated by the clock (a GGA before any RMC) and then
	// by its RMC is still one fix.
	epoch uint64
}

// Epoch numbers the epoch of Current: it changes when a sentence starts a
// new one, not when one refines or re-dates it.
func (t *Tracker) Epoch() uint64 { return t.epoch }

// NMEA applies one sentence received at now. It returns the fix when s
// completed one (a GGA, or an RMC from a receiver that sends no GGA).
func (t *Tracker) NMEA(s nmea.Sentence, now time.Time) (Fix, bool) {
	switch v := s.(type) {
	case *nmea.GGA:
		f := Fix{Received: now, Satellites: v.Satellites}
		f.Time = t.stamp(v.Time, now)
		f.Quality = t.ggaQuality(v.Quality, v.HasAlt)
		if f.Quality != None && v.HasPosition {
			f.Lat, f.Lon = ptr(v.Lat), ptr(v.Lon)
			if v.HasAlt {
				f.Alt = ptr(v.Alt)
			}
		} else {
			f.Quality = None
		}
		if v.HDOP > 0 {
			f.HDOP = ptr(v.HDOP)
		}
		if v.DGPSAge >= 0 && f.Quality.Rank() >= DGPS.Rank() {
			f.CorrectionAge = ptr(v.DGPSAge)
		}
		if t.tod == v.Time && t.speedSet {
			f.Speed, f.Heading = t.cur.Speed, t.cur.Heading
		}
		if t.tod != v.Time || t.epoch == 0 {
			t.epoch++
		}
		t.cur, t.tod, t.speedSet = f, v.Time, f.Speed != nil
		t.applyGST()
		return t.cur, true
	case *nmea.RMC:
		if v.HasDate {
			t.date = v.Date
		}
		same := v.Time == t.tod && t.tod >= 0
		if !v.Valid {
			if same || t.cur.Quality != None {
				if !same {
					t.epoch++
				}
				t.cur = Fix{Time: t.stamp(v.Time, now), Quality: None, Received: now}
				t.tod = v.Time
				return t.cur, true
			}
			return Fix{}, false
		}
		if !same {
			// An RMC-only receiver: the RMC is the fix.
			f := Fix{Time: t.stamp(v.Time, now), Received: now, Quality: rmcQuality(v.Mode, t.gsaFix)}
			f.Lat, f.Lon = ptr(v.Lat), ptr(v.Lon)
			t.cur, t.tod, t.speedSet = f, v.Time, false
			t.epoch++
		}
		t.cur.Time = t.stamp(v.Time, now)
		t.setVelocity(v.SpeedKnots, v.Course)
		return t.cur, !same
	case *nmea.VTG:
		t.setVelocity(v.SpeedKnots, v.CourseTrue)
	case *nmea.GSA:
		t.gsaFix = v.FixType
		if v.FixType == 1 && t.cur.Quality != None {
			t.cur = Fix{Time: t.cur.Time, Quality: None, Received: now}
		}
	case *nmea.GST:
		t.gst = v
		t.applyGST()
	}
	return Fix{}, false
}

// Current is the latest fix.
func (t *Tracker) Current() Fix { return t.cur }

func (t *Tracker) setVelocity(knots, course float64) {
	if t.cur.Quality == None {
		return
	}
	if knots >= 0 {
		t.cur.Speed = ptr(knots * 1852 / 3600)
		t.speedSet = true
	}
	if course >= 0 {
		t.cur.Heading = ptr(course)
	}
}

func (t *Tracker) applyGST() {
	g := t.gst
	if g == nil || g.Time != t.tod || t.cur.Quality == None {
		return
	}
	if g.LatErr >= 0 && g.LonErr >= 0 {
		t.cur.Accuracy = ptr(math.Hypot(g.LatErr, g.LonErr))
	}
	if g.AltErr >= 0 {
		t.cur.VAccuracy = ptr(g.AltErr)
	}
}

func (t *Tracker) ggaQuality(q int, hasAlt bool) Quality {
	switch q {
	case 1, 3: // GPS, PPS
		if t.gsaFix == 2 || (t.gsaFix == 0 && !hasAlt) {
			return Fix2D
		}
		return Fix3D
	case 2:
		return DGPS
	case 4:
		return RTKFixed
	case 5:
		return RTKFloat
	}
	// 0 none; 6 estimated (dead reckoning), 7 manual, 8 simulated: not a
	// satellite fix a safety check may trust.
	return None
}

func rmcQuality(mode string, gsaFix int) Quality {
	switch mode {
	case "D":
		return DGPS
	case "R":
		return RTKFixed
	case "F":
		return RTKFloat
	case "A", "":
		if gsaFix == 3 {
			return Fix3D
		}
		return Fix2D
	}
	return None // E estimated, M manual, S simulator, N not valid
}

// stamp dates a time of day with the last RMC date, or now's UTC date.
func (t *Tracker) stamp(tod time.Duration, now time.Time) time.Time {
	if tod < 0 {
		return now.UTC()
	}
	d := t.date
	if d.IsZero() {
		n := now.UTC()
		d = time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
	}
	return d.Add(tod)
}

// FromTPV turns a gpsd TPV into a fix; gst, when for the same time, gives
// the accuracy, else gpsd's eph. ok is false for a TPV that says nothing
// about the fix (gpsd sends mode-3 TPVs with only error estimates between
// fixes); err is set for one with a position but no valid time.
func FromTPV(v *gpsd.TPV, gst *gpsd.GST, usedSats int, now time.Time) (f Fix, ok bool, err error) {
	if v.Mode >= 2 && (v.Lat == nil || v.Lon == nil) {
		return Fix{}, false, nil
	}
	f = Fix{Received: now, Satellites: usedSats}
	// gpsd reports a position before the receiver's date is known (a GGA
	// without an RMC yet) with no time at all; such a fix has a zero Time
	// and State decides how to date it. A time that is there but does not
	// parse is refused.
	var ts time.Time
	if v.Time != "" {
		var terr error
		if ts, terr = time.Parse(time.RFC3339Nano, v.Time); terr != nil {
			return Fix{}, false, fmt.Errorf("gpsd TPV time %q: %w", v.Time, terr)
		}
	}
	f.Time = ts
	switch {
	case v.Mode < 2 || v.Lat == nil || v.Lon == nil:
		f.Quality = None
	case v.Status == 2:
		f.Quality = DGPS
	case v.Status == 3:
		f.Quality = RTKFixed
	case v.Status == 4:
		f.Quality = RTKFloat
	case v.Status >= 5: // dead reckoning, time only, simulated
		f.Quality = None
	case v.Mode == 2:
		f.Quality = Fix2D
	default:
		f.Quality = Fix3D
	}
	if f.Quality == None {
		if ts.IsZero() {
			f.Time = now.UTC()
		}
		return f, true, nil
	}
	if math.Abs(*v.Lat) > 90 || math.Abs(*v.Lon) > 180 {
		return Fix{}, false, fmt.Errorf("gpsd TPV position %v,%v out of range", *v.Lat, *v.Lon)
	}
	f.Lat, f.Lon = ptr(*v.Lat), ptr(*v.Lon)
	switch {
	case v.AltMSL != nil:
		f.Alt = ptr(*v.AltMSL)
	case v.Alt != nil:
		f.Alt = ptr(*v.Alt)
	}
	f.Speed, f.Heading = copyPtr(v.Speed), copyPtr(v.Track)
	switch {
	case gst != nil && gst.Time == v.Time && gst.Lat != nil && gst.Lon != nil:
		f.Accuracy = ptr(math.Hypot(*gst.Lat, *gst.Lon))
		f.VAccuracy = copyPtr(gst.Alt)
	case v.Eph != nil:
		f.Accuracy = ptr(*v.Eph)
		f.VAccuracy = copyPtr(v.Epv)
	case v.Epx != nil && v.Epy != nil:
		f.Accuracy = ptr(math.Hypot(*v.Epx, *v.Epy))
		f.VAccuracy = copyPtr(v.Epv)
	}
	return f, true, nil
}

func ptr(x float64) *float64 { return &x }

func copyPtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return ptr(*p)
}
