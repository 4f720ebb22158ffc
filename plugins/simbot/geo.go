package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// earthRadius is the mean Earth radius in metres. The simulator works in a
// local plane (east, north metres) around its start point: over the few
// kilometres a ground robot covers, the equirectangular projection is off by
// millimetres.
const earthRadius = 6371008.8

// LatLon is a WGS84 position in degrees.
type LatLon struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// plane maps between LatLon and local metres (x east, y north).
type plane struct {
	origin LatLon
	cosLat float64
}

func newPlane(o LatLon) plane { return plane{origin: o, cosLat: math.Cos(o.Lat * math.Pi / 180)} }

func (p plane) toXY(ll LatLon) (x, y float64) {
	x = (ll.Lon - p.origin.Lon) * math.Pi / 180 * earthRadius * p.cosLat
	y = (ll.Lat - p.origin.Lat) * math.Pi / 180 * earthRadius
	return x, y
}

func (p plane) toLatLon(x, y float64) LatLon {
	return LatLon{
		Lat: p.origin.Lat + y/earthRadius*180/math.Pi,
		Lon: p.origin.Lon + x/(earthRadius*p.cosLat)*180/math.Pi,
	}
}

// Zone is an obstacle: a circle (Lat, Lon, RadiusM) or a polygon of at
// least three [lat, lon] vertices. The robot stops ("blocked") rather than
// enter one, and reports them so a safety policy can keep paths out.
type Zone struct {
	Name    string       `json:"name"`
	Lat     float64      `json:"lat,omitempty"`
	Lon     float64      `json:"lon,omitempty"`
	RadiusM float64      `json:"radius_m,omitempty"`
	Polygon [][2]float64 `json:"polygon,omitempty"`
}

// zone is a Zone in the local plane.
type zone struct {
	cx, cy, r float64
	poly      [][2]float64 // x, y
}

func (z zone) contains(x, y float64) bool {
	if z.poly == nil {
		return math.Hypot(x-z.cx, y-z.cy) <= z.r
	}
	in := false
	for i, j := 0, len(z.poly)-1; i < len(z.poly); j, i = i, i+1 {
		xi, yi, xj, yj := z.poly[i][0], z.poly[i][1], z.poly[j][0], z.poly[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

// parseZones reads the zones config value: a JSON array of Zone. Errors
// name the zone and the field.
func parseZones(s string, p plane) ([]Zone, []zone, error) {
	var zs []Zone
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&zs); err != nil {
		return nil, nil, fmt.Errorf(`zones: want a JSON array of {"name", "lat", "lon", "radius_m"} or {"name", "polygon": [[lat, lon], …]}: %v`, err)
	}
	local := make([]zone, 0, len(zs))
	for i, z := range zs {
		what := fmt.Sprintf("zones[%d] (%q)", i, z.Name)
		switch {
		case z.Polygon != nil && z.RadiusM != 0:
			return nil, nil, fmt.Errorf("%s: has both radius_m and polygon; want one", what)
		case z.Polygon != nil:
			if len(z.Polygon) < 3 {
				return nil, nil, fmt.Errorf("%s: polygon has %d vertices; want at least 3", what, len(z.Polygon))
			}
			lz := zone{poly: make([][2]float64, len(z.Polygon))}
			for k, v := range z.Polygon {
				if err := checkLatLon(v[0], v[1]); err != nil {
					return nil, nil, fmt.Errorf("%s: polygon[%d]: %v", what, k, err)
				}
				lz.poly[k][0], lz.poly[k][1] = p.toXY(LatLon{Lat: v[0], Lon: v[1]})
			}
			local = append(local, lz)
		default:
			if err := checkLatLon(z.Lat, z.Lon); err != nil {
				return nil, nil, fmt.Errorf("%s: %v", what, err)
			}
			if !(z.RadiusM > 0) || math.IsInf(z.RadiusM, 0) {
				return nil, nil, fmt.Errorf("%s: radius_m %v: want a positive number of metres (or a polygon)", what, z.RadiusM)
			}
			x, y := p.toXY(LatLon{Lat: z.Lat, Lon: z.Lon})
			local = append(local, zone{cx: x, cy: y, r: z.RadiusM})
		}
	}
	return zs, local, nil
}

func checkLatLon(lat, lon float64) error {
	if !(lat >= -90 && lat <= 90) {
		return fmt.Errorf("lat %v: want a number from -90 to 90", lat)
	}
	if !(lon >= -180 && lon <= 180) {
		return fmt.Errorf("lon %v: want a number from -180 to 180", lon)
	}
	return nil
}

// wrapPi wraps an angle to (-π, π].
func wrapPi(a float64) float64 {
	a = math.Mod(a+math.Pi, 2*math.Pi)
	if a <= 0 {
		a += 2 * math.Pi
	}
	return a - math.Pi
}
