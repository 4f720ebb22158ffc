package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
)

// poses is the latest pose of each agent's robot, from its plugins'
// readings and events: what the motion rules decide on.
type poses struct {
	mu sync.RWMutex // lock order: after Agent.mu
	by map[string]policy.Pose
}

// poseReading is the shape of a reading that carries a position. The
// names follow what GNSS and robot plugins report (plugins/gnss,
// plugins/simbot); the alternatives are the common spellings.
type poseReading struct {
	Lat        *float64 `json:"lat"`
	Lon        *float64 `json:"lon"`
	Latitude   *float64 `json:"latitude"`
	Longitude  *float64 `json:"longitude"`
	HeadingDeg *float64 `json:"heading_deg"`
	Heading    *float64 `json:"heading"`
	SpeedMPS   *float64 `json:"speed_mps"`
	Speed      *float64 `json:"speed"`
	Fix        string   `json:"fix"`
	Quality    string   `json:"quality"` // plugins/gnss names the fix so
	BatteryPct *float64 `json:"battery_pct"`
	Mode       string   `json:"mode"`
	Event      string   `json:"event"` // plugins/gnss events: receiver_lost
	Time       time.Time
	Received   time.Time `json:"received"` // when the plugin read it (plugins/gnss)
}

// observe keeps payload as the agent's pose if it carries a valid
// position; it reports whether it did. A reading that says the fix is lost
// (quality or fix "none", or a receiver_lost event) forgets the pose: an
// old position is never kept as current.
func (p *poses) observe(agent, source string, payload json.RawMessage, at time.Time) bool {
	var r poseReading
	if json.Unmarshal(payload, &r) != nil {
		return false
	}
	fix := r.Fix
	if fix == "" {
		fix = r.Quality
	}
	if fix == string(policy.FixNone) || r.Event == "receiver_lost" {
		p.mu.Lock()
		if old, ok := p.by[agent]; ok && old.Source == source {
			delete(p.by, agent)
		}
		p.mu.Unlock()
		return false
	}
	lat, lon := cmp.Or(r.Lat, r.Latitude), cmp.Or(r.Lon, r.Longitude)
	if lat == nil || lon == nil || !valid(*lat, -90, 90) || !valid(*lon, -180, 180) {
		return false
	}
	pose := policy.Pose{Lat: *lat, Lon: *lon, Mode: r.Mode, Time: at, Source: source, BatteryPct: r.BatteryPct}
	if h := cmp.Or(r.HeadingDeg, r.Heading); h != nil {
		pose.HeadingDeg = *h
	}
	if s := cmp.Or(r.SpeedMPS, r.Speed); s != nil {
		pose.SpeedMPS = *s
	}
	if f, ok := policy.ParseFix(fix); ok {
		pose.Fix = f
	}
	switch {
	case !r.Received.IsZero() && !r.Received.After(at):
		pose.Time = r.Received // when the plugin read it
	case !r.Time.IsZero() && !r.Time.After(at):
		pose.Time = r.Time // the reading's own time, when it says so
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by == nil {
		p.by = map[string]policy.Pose{}
	}
	if old, ok := p.by[agent]; ok && old.Time.After(pose.Time) {
		return false // an older reading arriving late
	}
	p.by[agent] = pose
	return true
}

func (p *poses) get(agent string) (policy.Pose, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pose, ok := p.by[agent]
	return pose, ok
}

func valid(f, lo, hi float64) bool { return !math.IsNaN(f) && f >= lo && f <= hi }

// Report stores a reading from the program embedding depai — its own
// sensors, not a plugin's — like a plugin's reading: in the agent's
// namespace under source, and as the robot's pose when it carries a
// position.
func (a *Agent) Report(ctx context.Context, source, sensor string, payload json.RawMessage) error {
	a.fleet.poses.observe(a.cfg.Name, source, payload, time.Now())
	_, err := a.mem.Put(ctx, memory.Record{
		Namespace: a.ns + "/" + source, Kind: memory.KindReading, Author: source,
		Text: fmt.Sprintf("%s: %s", sensor, payload), Data: payload,
		Tags: []string{"source:" + source, "sensor:" + sensor},
	})
	if err != nil {
		return fmt.Errorf("agent %s: report %s/%s: %w", a.cfg.Name, source, sensor, err)
	}
	return nil
}

// RobotState is a robot's latest pose as /status and the API show it.
type RobotState struct {
	policy.Pose
	AgeMillis int64  `json:"age_ms"`
	Stale     bool   `json:"stale"`            // older than the agent's max_pose_age (default 10s)
	Teleop    string `json:"teleop,omitempty"` // the operator holding exclusive control
}

// robotState reports the agent's robot, or nil when no pose was read yet.
func (a *Agent) robotState() *RobotState {
	pose, ok := a.fleet.poses.get(a.cfg.Name)
	holder, _ := a.fleet.policy.TeleopHolder(a.cfg.Name)
	if !ok {
		if holder == "" {
			return nil
		}
		return &RobotState{Teleop: holder, Stale: true}
	}
	maxAge := a.cfg.Safety.Motion.MaxPoseAge.Std()
	if maxAge <= 0 {
		maxAge = 10 * time.Second
	}
	age := time.Since(pose.Time)
	return &RobotState{Pose: pose, AgeMillis: age.Milliseconds(), Stale: age > maxAge, Teleop: holder}
}
