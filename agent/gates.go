package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/tool"
)

// gate holds one actuator rule and its rate state. Gates are checked in code
// before any plugin sees the call; the model cannot argue with them.
type gate struct {
	rule   config.ActuatorRule
	rate   float64 // calls per second; 0: unlimited
	burst  float64
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newGates(rules []config.ActuatorRule) (map[string]*gate, error) {
	gates := make(map[string]*gate, len(rules))
	for _, r := range rules {
		g := &gate{rule: r}
		if r.MaxRate != "" {
			n, per, err := r.Rate()
			if err != nil {
				return nil, fmt.Errorf("safety.actuators %s: %w", r.Tool, err)
			}
			g.rate = n / per.Seconds()
			g.burst = math.Max(1, n)
			g.tokens = g.burst
		}
		gates[r.Tool] = g
	}
	return gates, nil
}

// actuatorArgs are the fields of an actuator call the gates understand;
// plugins name them this way so the policy can read them.
type actuatorArgs struct {
	Speed     *float64 `json:"speed"` // m/s
	Lat       *float64 `json:"lat"`
	Lon       *float64 `json:"lon"`
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
}

// check decides one call at now: nil to allow, or the reason it is denied.
func (g *gate) check(args json.RawMessage, now time.Time) *tool.Error {
	var in actuatorArgs
	_ = json.Unmarshal(args, &in) // arguments were validated against the tool's schema; unknown shapes carry no gated fields
	if g.rule.MaxSpeed > 0 && in.Speed != nil && *in.Speed > g.rule.MaxSpeed {
		return deny("speed %.2f m/s is above the limit of %.2f m/s for %s (safety.actuators)", *in.Speed, g.rule.MaxSpeed, g.rule.Tool)
	}
	lat, lon := pick(in.Lat, in.Latitude), pick(in.Lon, in.Longitude)
	if lat != nil && lon != nil {
		for _, z := range g.rule.KeepOut {
			if d := haversineM(*lat, *lon, z.Lat, z.Lon); d < z.RadiusM {
				return deny("target %.6f,%.6f is inside keep-out zone %q (%.0f m from its centre, radius %.0f m)", *lat, *lon, z.Name, d, z.RadiusM)
			}
		}
	}
	if g.rate > 0 {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.last.IsZero() {
			g.tokens = math.Min(g.burst, g.tokens+now.Sub(g.last).Seconds()*g.rate)
		}
		g.last = now
		if g.tokens < 1 {
			return deny("%s is limited to %s; try again later", g.rule.Tool, g.rule.MaxRate)
		}
		g.tokens--
	}
	return nil
}

func deny(format string, args ...any) *tool.Error {
	return &tool.Error{Code: tool.CodeDenied, Message: fmt.Sprintf(format, args...)}
}

func pick(a, b *float64) *float64 {
	if a != nil {
		return a
	}
	return b
}

// haversineM is the great-circle distance in metres.
func haversineM(lat1, lon1, lat2, lon2 float64) float64 {
	const earthRadiusM = 6371008.8
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}
