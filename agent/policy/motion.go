package policy

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/depai/depai/agent/config"
)

// Pose is where a robot is, as its latest reading says.
type Pose struct {
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	HeadingDeg float64   `json:"heading_deg,omitempty"`
	SpeedMPS   float64   `json:"speed_mps,omitempty"`
	Fix        Fix       `json:"fix,omitempty"`
	BatteryPct *float64  `json:"battery_pct,omitempty"`
	Mode       string    `json:"mode,omitempty"`
	Time       time.Time `json:"time"`   // when the reading was taken
	Source     string    `json:"source"` // the plugin that reported it
}

// Fix is the quality of a position fix, from worst to best.
type Fix string

// Fix qualities.
const (
	FixNone     Fix = "none"
	Fix2D       Fix = "2d"
	Fix3D       Fix = "3d"
	FixDGPS     Fix = "dgps"
	FixRTKFloat Fix = "rtk_float"
	FixRTKFixed Fix = "rtk_fixed"
)

var fixRank = map[Fix]int{FixNone: 0, Fix2D: 1, Fix3D: 2, FixDGPS: 3, FixRTKFloat: 4, FixRTKFixed: 5}

// ParseFix reads a fix quality as readings and the config write it.
func ParseFix(s string) (Fix, bool) {
	f := Fix(strings.ToLower(strings.TrimSpace(s)))
	_, ok := fixRank[f]
	return f, ok
}

// AtLeast reports whether f is as good as min. An unknown fix is no fix.
func (f Fix) AtLeast(min Fix) bool {
	r, ok := fixRank[f]
	return ok && r >= fixRank[min]
}

// Poses tells the engine where each agent's robot is.
type Poses func(agent string) (Pose, bool)

// motionRules are an agent's rules that need to know where its robot is.
type motionRules struct {
	cfg config.Motion
}

// needsPose reports whether every move must be decided on a fresh pose.
func (m motionRules) needsPose() bool {
	c := m.cfg
	return c.MaxPoseAge > 0 || c.MinFix != "" || c.BatteryReserve > 0 || len(c.Geofence) > 0
}

// checkMove decides a move from pose (nil: unknown) to target under the
// agent's motion rules and the tool's keep-out zones. A reach above 0 makes
// the target the disc of that radius in metres around lat/lon (a velocity
// command's extent), which must keep clear of every zone and stay inside
// the geofence. It returns "" to allow, or the rule and the reason.
func checkMove(m motionRules, zones []config.Zone, pose *Pose, lat, lon, reach float64, now time.Time) (rule, reason string) {
	c := m.cfg
	if m.needsPose() {
		if pose == nil {
			return "safety.motion", "the robot's position is unknown (no pose reading yet), so the move cannot be checked"
		}
		maxAge := c.MaxPoseAge.Std()
		if maxAge <= 0 {
			maxAge = config.DefaultMaxPoseAge.Std()
		}
		if age := now.Sub(pose.Time); age > maxAge {
			return "safety.motion.max_pose_age", fmt.Sprintf("the robot's pose is %v old (from %s), older than max_pose_age %v: stale pose, no motion", age.Round(time.Millisecond), pose.Source, maxAge)
		}
		if c.MinFix != "" {
			min, _ := ParseFix(c.MinFix)
			if !pose.Fix.AtLeast(min) {
				return "safety.motion.min_fix", fmt.Sprintf("the robot's fix is %q, below min_fix %q: no precise motion without it", fixName(pose.Fix), min)
			}
		}
		if c.BatteryReserve > 0 {
			if pose.BatteryPct == nil {
				return "safety.motion.battery_reserve", "the robot reports no battery level, so battery_reserve cannot be checked"
			}
			if *pose.BatteryPct < c.BatteryReserve {
				return "safety.motion.battery_reserve", fmt.Sprintf("battery at %.0f%% is below the reserve of %.0f%%", *pose.BatteryPct, c.BatteryReserve)
			}
		}
	}
	origin := pose
	if origin != nil && !m.needsPose() && now.Sub(origin.Time) > config.DefaultMaxPoseAge.Std() {
		origin = nil // a stale pose says nothing about the path; the target is still checked
	}
	ref := [2]float64{lat, lon}
	if origin != nil {
		ref = [2]float64{origin.Lat, origin.Lon}
	}
	proj := newProjection(ref[0], ref[1])
	to := proj.xy(lat, lon)
	from := to
	if origin != nil {
		from = proj.xy(origin.Lat, origin.Lon)
	}
	for _, z := range zones {
		if len(z.Polygon) > 0 {
			poly := proj.polygon(z.Polygon)
			switch {
			case inside(to, poly):
				return "keep_out[" + z.Name + "]", fmt.Sprintf("target %.6f,%.6f is inside keep-out zone %q", lat, lon, z.Name)
			case reach > 0 && polygonDistance(to, poly) < reach:
				return "keep_out[" + z.Name + "]", fmt.Sprintf("the velocity command can take the robot %.0f m from %.6f,%.6f, into keep-out zone %q (%.0f m away)", reach, lat, lon, z.Name, polygonDistance(to, poly))
			case origin != nil && segmentCrosses(from, to, poly):
				return "keep_out[" + z.Name + "]", fmt.Sprintf("the straight path from %.6f,%.6f to %.6f,%.6f crosses keep-out zone %q", origin.Lat, origin.Lon, lat, lon, z.Name)
			}
			continue
		}
		centre := proj.xy(z.Lat, z.Lon)
		if d := haversineM(lat, lon, z.Lat, z.Lon); d < z.RadiusM {
			return "keep_out[" + z.Name + "]", fmt.Sprintf("target %.6f,%.6f is inside keep-out zone %q (%.0f m from its centre, radius %.0f m)", lat, lon, z.Name, d, z.RadiusM)
		} else if d < z.RadiusM+reach {
			return "keep_out[" + z.Name + "]", fmt.Sprintf("the velocity command can take the robot %.0f m from %.6f,%.6f, into keep-out zone %q (its centre %.0f m away, radius %.0f m)", reach, lat, lon, z.Name, d, z.RadiusM)
		}
		if origin != nil {
			if d := segmentDistance(centre, from, to); d < z.RadiusM {
				return "keep_out[" + z.Name + "]", fmt.Sprintf("the straight path from %.6f,%.6f to %.6f,%.6f passes %.0f m from the centre of keep-out zone %q (radius %.0f m)", origin.Lat, origin.Lon, lat, lon, d, z.Name, z.RadiusM)
			}
		}
	}
	if len(c.Geofence) > 0 {
		fence := proj.polygon(c.Geofence)
		if !inside(to, fence) {
			return "safety.motion.geofence", fmt.Sprintf("target %.6f,%.6f is outside the geofence", lat, lon)
		}
		if d := polygonDistance(to, fence); reach > 0 && d < reach {
			return "safety.motion.geofence", fmt.Sprintf("the velocity command can take the robot %.0f m from %.6f,%.6f, out of the geofence (%.0f m away)", reach, lat, lon, d)
		}
		if segmentCrosses(from, to, fence) {
			return "safety.motion.geofence", fmt.Sprintf("the straight path to %.6f,%.6f leaves the geofence", lat, lon)
		}
	}
	return "", ""
}

func fixName(f Fix) string {
	if f == "" {
		return "unknown"
	}
	return string(f)
}

// projection maps latitude and longitude to metres east and north of a
// reference point: an equirectangular projection, accurate to well under
// a metre over the few kilometres a robot's move spans.
type projection struct {
	lat0, lon0, cos float64
}

const metresPerDegree = 6371008.8 * math.Pi / 180

func newProjection(lat, lon float64) projection {
	return projection{lat0: lat, lon0: lon, cos: math.Cos(lat * math.Pi / 180)}
}

func (p projection) xy(lat, lon float64) [2]float64 {
	return [2]float64{(lon - p.lon0) * metresPerDegree * p.cos, (lat - p.lat0) * metresPerDegree}
}

func (p projection) polygon(pts [][]float64) [][2]float64 {
	out := make([][2]float64, len(pts))
	for i, q := range pts {
		out[i] = p.xy(q[0], q[1])
	}
	return out
}

// inside reports whether q is inside the polygon (even-odd rule).
func inside(q [2]float64, poly [][2]float64) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a[1] > q[1]) != (b[1] > q[1]) && q[0] < (b[0]-a[0])*(q[1]-a[1])/(b[1]-a[1])+a[0] {
			in = !in
		}
	}
	return in
}

// segmentCrosses reports whether the segment a→b crosses any edge of poly.
func segmentCrosses(a, b [2]float64, poly [][2]float64) bool {
	if a == b {
		return false
	}
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		if segmentsIntersect(a, b, poly[j], poly[i]) {
			return true
		}
	}
	return false
}

func cross(o, a, b [2]float64) float64 {
	return (a[0]-o[0])*(b[1]-o[1]) - (a[1]-o[1])*(b[0]-o[0])
}

func segmentsIntersect(p1, p2, q1, q2 [2]float64) bool {
	d1, d2 := cross(q1, q2, p1), cross(q1, q2, p2)
	d3, d4 := cross(p1, p2, q1), cross(p1, p2, q2)
	return ((d1 > 0) != (d2 > 0)) && ((d3 > 0) != (d4 > 0)) && d1 != 0 && d2 != 0 && d3 != 0 && d4 != 0
}

// segmentDistance is the distance from c to the segment a→b.
func segmentDistance(c, a, b [2]float64) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = math.Max(0, math.Min(1, ((c[0]-a[0])*dx+(c[1]-a[1])*dy)/l2))
	}
	px, py := a[0]+t*dx-c[0], a[1]+t*dy-c[1]
	return math.Hypot(px, py)
}

// polygonDistance is the distance from c to the nearest edge of poly.
func polygonDistance(c [2]float64, poly [][2]float64) float64 {
	d := math.Inf(1)
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		d = math.Min(d, segmentDistance(c, poly[j], poly[i]))
	}
	return d
}
