// Command simbot is a simulated ground robot as a depai plugin: unicycle
// (differential-drive) kinematics with acceleration, deceleration and yaw
// rate limits, battery drain, a noisy GNSS receiver of configurable fix
// quality, and obstacles as zones it halts at and reports. It moves in real
// time or faster (time_scale), reports its pose as readings of the sensor
// "pose", and can serve its receiver's NMEA (GGA and RMC) on a TCP port so
// the gnss plugin (source nmea+tcp://…) reads it like a real receiver.
//
// It is a process plugin, not WASM: the robot moves between calls, so it
// needs its own goroutines and wall clock (physics, NMEA), a TCP listener,
// and the SDK's watchdog, which stops the robot when the agent's heartbeats
// stop (a WASM guest runs only while a call is in it). A process plugin is
// trusted native code: it runs with the agent user's network and files.
//
// Its stop handler — the agent's /stop, an unload or shutdown, the watchdog
// (300 ms) or a lost agent — commands zero velocity; it decelerates at
// max_decel_mps2 to rest. robot.stop does the same from a tool call.
//
// Config (granted keys; each is optional):
//
//	start_lat, start_lon   start position, degrees (52.520008, 13.404954)
//	start_heading_deg      compass heading at start, 0 = north (0)
//	time_scale             simulated seconds per real second, 0.01–1000 (1)
//	max_speed_mps          (1.5)   max_accel_mps2 (1)   max_decel_mps2 (2)
//	max_yaw_rate_dps       (90)
//	battery_pct            charge at start (100); drain_pct_per_km (5); idle_drain_pct_per_h (2)
//	fix                    rtk_fixed | rtk_float | dgps | 3d | 2d | none (rtk_fixed)
//	seed                   the receiver noise's seed (1)
//	zones                  JSON: [{"name","lat","lon","radius_m"} | {"name","polygon":[[lat,lon],…]}]
//	nmea_addr              host:port to serve NMEA on, e.g. 127.0.0.1:10110 (off)
//	nmea_interval          a Go duration between NMEA epochs (1s)
//
// The robot is the plugin's run hook (sdk.Run): it starts with the plugin's
// config as soon as the host has loaded it — moving, draining and serving
// NMEA before any call — and ends when the plugin is unloaded. A refused
// config is logged and answered to every call.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/depai/depai/plugins/internal/live"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// Watchdog is how long the robot keeps moving without the agent's heartbeat.
const Watchdog = 300 * time.Millisecond

// PoseInterval is how often the host polls the pose sensor.
const PoseInterval = 500 * time.Millisecond

var configKeys = []string{
	"start_lat", "start_lon", "start_heading_deg", "time_scale",
	"max_speed_mps", "max_accel_mps2", "max_decel_mps2", "max_yaw_rate_dps",
	"battery_pct", "drain_pct_per_km", "idle_drain_pct_per_h",
	"fix", "seed", "zones", "nmea_addr", "nmea_interval",
}

func init() {
	sdk.Plugin("simbot", "0.1.0")
	sdk.Requests(wire.Capabilities{Actuator: true, Config: configKeys})
	sdk.Tool("drive.to", "Drive to a position (lat, lon in degrees) at up to speed m/s; returns at once, the robot arrives later (see robot.pose).", driveTo, sdk.Actuator())
	sdk.Tool("drive.velocity", "Drive at linear m/s (negative: backwards) and angular rad/s (positive: clockwise) for duration seconds, then stop.", driveVelocity, sdk.Actuator())
	// Stopping is never gated: a safety rule must not stand between an
	// operator and a robot coming to rest.
	sdk.Tool("robot.stop", "Stop now: zero velocity, decelerating at the robot's limit.", robotStop)
	sdk.Tool("robot.pose", "Where the robot is: position as its GNSS reports it, heading, speed, fix, battery, mode.", robotPose)
	sdk.Tool("sim.info", "The simulation: limits, time scale, obstacle zones, the NMEA address.", simInfo)
	sdk.Tool("sim.set_fix", "Change the simulated receiver's fix quality.", setFix, sdk.Writes())
	sdk.Sensor("pose", "The robot's pose: lat, lon, heading_deg, speed_mps, fix, accuracy_m, battery_pct, mode, time.", PoseInterval, pose)
	sdk.OnStop(onStop)
	sdk.Watchdog(Watchdog)
	sdk.Run(bot.runHook)
}

func main() { sdk.Main() }

// bot is the one simulated robot of this plugin process. The SDK registers
// handlers in init() and has no per-instance state, so it lives here. mu
// guards the robot; it is held only for short computations.
var bot sim

type sim struct {
	// started holds the run hook's outcome for the handlers: empty until
	// the robot runs, then nil or the refused config.
	started live.Slot[struct{}]
	mu      sync.Mutex
	r       *robot
	zones   []Zone
	nmea    *nmeaServer
}

// runHook starts the robot with the config read through ctx's host and
// keeps it running until the plugin is unloaded.
func (s *sim) runHook(ctx context.Context) error {
	err := s.start(ctx)
	if err != nil {
		sdk.Log(ctx, slog.LevelWarn, "simbot: not started", "err", err.Error())
	}
	s.started.Hold(ctx, struct{}{}, err)
	return nil
}

// ready waits for the robot to run; every handler starts with it.
func (s *sim) ready(ctx context.Context) error {
	_, err := s.started.Get(ctx)
	return err
}

// start builds the robot from the plugin's config and sets it moving until
// ctx ends.
func (s *sim) start(ctx context.Context) error {
	set, err := readSettings(ctx)
	if err != nil {
		return err
	}
	zs, local, err := parseZonesValue(set)
	if err != nil {
		return sdk.Errorf(wire.CodeInvalidArgument, "simbot config %v", err)
	}
	var srv *nmeaServer
	if set.nmeaAddr != "" {
		if srv, err = listenNMEA(set.nmeaAddr); err != nil {
			return sdk.Errorf(wire.CodeUnavailable, "simbot config %v", err)
		}
	}
	r := newRobot(set, local)
	s.mu.Lock()
	s.r, s.zones, s.nmea = r, zs, srv
	s.mu.Unlock()
	go s.run(ctx, r, srv, set)
	return nil
}

// parseZonesValue parses the zones config value, which needs the start
// position for the local plane.
func parseZonesValue(set settings) ([]Zone, []zone, error) {
	if set.zonesJSON == "" {
		return nil, nil, nil
	}
	return parseZones(set.zonesJSON, newPlane(set.start))
}

// run advances r in real time × time_scale and writes NMEA to srv (if
// any), until ctx ends or r is no longer the plugin's robot (a test binary
// loads the plugin several times). Then it closes srv.
func (s *sim) run(ctx context.Context, r *robot, srv *nmeaServer, set settings) {
	tick := time.NewTicker(set.step)
	defer tick.Stop()
	if srv != nil {
		defer srv.close()
	}
	last := time.Now()
	nextNMEA := last
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
		s.mu.Lock()
		if s.r != r {
			s.mu.Unlock()
			return
		}
		r.advance(now.Sub(last).Seconds() * set.timeScale)
		var out sample
		if srv != nil && !now.Before(nextNMEA) {
			out = s.sampleLocked(now)
		}
		s.mu.Unlock()
		last = now
		if srv != nil && !now.Before(nextNMEA) {
			srv.broadcast([]byte(nmeaSentences(out)))
			nextNMEA = nextNMEA.Add(set.nmeaEvery)
			if nextNMEA.Before(now) {
				nextNMEA = now.Add(set.nmeaEvery)
			}
		}
	}
}

func (s *sim) sampleLocked(now time.Time) sample {
	r := s.r
	ll, sigma, ok := r.measured()
	course := r.heading * 180 / math.Pi
	if r.v < 0 {
		course = math.Mod(course+180, 360)
	}
	return sample{at: now, ll: ll, hasFix: ok, fix: r.fix, sigma: sigma, speed: math.Abs(r.v), course: course, altitude: 35}
}

// Pose is the robot's state as the sensor "pose" and robot.pose report it.
// Lat and Lon are absent without a fix. Time is when it was sampled.
type Pose struct {
	Lat        *float64  `json:"lat,omitempty"`
	Lon        *float64  `json:"lon,omitempty"`
	HeadingDeg float64   `json:"heading_deg"`
	SpeedMPS   float64   `json:"speed_mps"` // signed: negative backwards
	YawRateDPS float64   `json:"yaw_rate_dps"`
	Fix        string    `json:"fix"`
	AccuracyM  float64   `json:"accuracy_m,omitempty"` // 1σ horizontal
	BatteryPct float64   `json:"battery_pct"`
	Mode       string    `json:"mode"`
	OdometerM  float64   `json:"odometer_m"`
	Time       time.Time `json:"time"`
}

func (s *sim) pose() Pose {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.r
	smp := s.sampleLocked(time.Now())
	p := Pose{
		HeadingDeg: round(r.heading*180/math.Pi, 2), SpeedMPS: round(r.v, 3), YawRateDPS: round(r.w*180/math.Pi, 2),
		Fix: r.fix, AccuracyM: smp.sigma, BatteryPct: round(r.battery, 3), Mode: r.mode(), OdometerM: round(r.odo, 3), Time: smp.at.UTC(),
	}
	if smp.hasFix {
		lat, lon := smp.ll.Lat, smp.ll.Lon
		p.Lat, p.Lon = &lat, &lon
	}
	return p
}

func round(v float64, digits int) float64 {
	f := math.Pow(10, float64(digits))
	return math.Round(v*f) / f
}

type none struct{}

func pose(ctx context.Context) (Pose, error) {
	if err := bot.ready(ctx); err != nil {
		return Pose{}, err
	}
	return bot.pose(), nil
}

func robotPose(ctx context.Context, _ none) (Pose, error) { return pose(ctx) }

// DriveTo is drive.to's input. The names are what a safety policy reads.
type DriveTo struct {
	Lat   float64 `json:"lat" jsonschema:"target latitude, degrees"`
	Lon   float64 `json:"lon" jsonschema:"target longitude, degrees"`
	Speed float64 `json:"speed" jsonschema:"m/s, at most the robot's max_speed_mps"`
}

// Accepted answers a drive command.
type Accepted struct {
	DistanceM  float64 `json:"distance_m,omitempty"`
	BearingDeg float64 `json:"bearing_deg,omitempty"`
	Mode       string  `json:"mode"`
}

func driveTo(ctx context.Context, in DriveTo) (Accepted, error) {
	if err := bot.ready(ctx); err != nil {
		return Accepted{}, err
	}
	if err := checkLatLon(in.Lat, in.Lon); err != nil {
		return Accepted{}, sdk.Errorf(wire.CodeInvalidArgument, "drive.to: %v", err)
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	r := bot.r
	if err := checkSpeed("drive.to: speed", in.Speed, r.set.maxSpeed, false); err != nil {
		return Accepted{}, err
	}
	if r.battery <= 0 {
		return Accepted{}, sdk.Errorf(wire.CodeUnavailable, "drive.to: the battery is empty")
	}
	tx, ty := r.plane.toXY(LatLon{Lat: in.Lat, Lon: in.Lon})
	r.goTo(tx, ty, in.Speed)
	dx, dy := tx-r.x, ty-r.y
	return Accepted{DistanceM: round(math.Hypot(dx, dy), 3), BearingDeg: round(math.Mod(math.Atan2(dx, dy)*180/math.Pi+360, 360), 2), Mode: r.mode()}, nil
}

// DriveVelocity is drive.velocity's input.
type DriveVelocity struct {
	Linear   float64 `json:"linear" jsonschema:"m/s, negative backwards; at most max_speed_mps either way"`
	Angular  float64 `json:"angular" jsonschema:"rad/s, positive clockwise; at most max_yaw_rate_dps either way"`
	Duration float64 `json:"duration" jsonschema:"seconds, more than 0 and at most 60"`
}

func driveVelocity(ctx context.Context, in DriveVelocity) (Accepted, error) {
	if err := bot.ready(ctx); err != nil {
		return Accepted{}, err
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	r := bot.r
	if err := checkSpeed("drive.velocity: linear", in.Linear, r.set.maxSpeed, true); err != nil {
		return Accepted{}, err
	}
	if err := checkSpeed("drive.velocity: angular", in.Angular, r.set.maxYawRate, true); err != nil {
		return Accepted{}, err
	}
	if !(in.Duration > 0 && in.Duration <= 60) {
		return Accepted{}, sdk.Errorf(wire.CodeInvalidArgument, "drive.velocity: duration %v: want seconds, more than 0 and at most 60", in.Duration)
	}
	if r.battery <= 0 {
		return Accepted{}, sdk.Errorf(wire.CodeUnavailable, "drive.velocity: the battery is empty")
	}
	r.velocity(in.Linear, in.Angular, in.Duration)
	return Accepted{Mode: r.mode()}, nil
}

func checkSpeed(what string, v, max float64, signed bool) error {
	lo := 0.0
	if signed {
		lo = -max
	}
	if math.IsNaN(v) || v > max || v < lo || (!signed && v == 0) {
		want := fmt.Sprintf("more than 0 and at most %v", max)
		if signed {
			want = fmt.Sprintf("from %v to %v", -max, max)
		}
		return sdk.Errorf(wire.CodeInvalidArgument, "%s %v: want %s (this robot's limit)", what, v, want)
	}
	return nil
}

// Stopped answers robot.stop.
type Stopped struct {
	SpeedMPS float64 `json:"speed_mps"` // speed when the stop was commanded
	RestInS  float64 `json:"rest_in_s"` // simulated seconds until at rest
}

func robotStop(ctx context.Context, _ none) (Stopped, error) {
	if err := bot.ready(ctx); err != nil {
		return Stopped{}, err
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	v := bot.r.v
	bot.r.stop()
	return Stopped{SpeedMPS: round(v, 3), RestInS: round(math.Abs(v)/bot.r.set.maxDecel, 3)}, nil
}

// onStop is the stop handler: zero velocity at once. When the agent is gone
// the process exits as soon as this returns, and the simulated robot with
// it, so then it waits until the robot is at rest.
func onStop(ctx context.Context) error {
	bot.mu.Lock()
	r := bot.r
	if r != nil {
		r.stop()
	}
	bot.mu.Unlock()
	if r == nil || sdk.StopReason(ctx) != wire.StopHostLost {
		return nil
	}
	for {
		bot.mu.Lock()
		rest := r.v == 0
		var last sample
		if rest && bot.nmea != nil {
			last = bot.sampleLocked(time.Now())
		}
		srv := bot.nmea
		bot.mu.Unlock()
		if rest {
			// The receiver's last epoch before the process goes: at rest.
			if srv != nil {
				srv.broadcast([]byte(nmeaSentences(last)))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Info answers sim.info.
type Info struct {
	TimeScale     float64 `json:"time_scale"`
	MaxSpeedMPS   float64 `json:"max_speed_mps"`
	MaxAccelMPS2  float64 `json:"max_accel_mps2"`
	MaxDecelMPS2  float64 `json:"max_decel_mps2"`
	MaxYawRateDPS float64 `json:"max_yaw_rate_dps"`
	Watchdog      string  `json:"watchdog"`
	Zones         []Zone  `json:"zones"`
	NMEAAddr      string  `json:"nmea_addr,omitempty"`
	Start         LatLon  `json:"start"`
}

func simInfo(ctx context.Context, _ none) (Info, error) {
	if err := bot.ready(ctx); err != nil {
		return Info{}, err
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	set := bot.r.set
	in := Info{
		TimeScale: set.timeScale, MaxSpeedMPS: set.maxSpeed, MaxAccelMPS2: set.maxAccel, MaxDecelMPS2: set.maxDecel,
		MaxYawRateDPS: round(set.maxYawRate*180/math.Pi, 3), Watchdog: Watchdog.String(), Zones: append([]Zone{}, bot.zones...), Start: set.start,
	}
	if bot.nmea != nil {
		in.NMEAAddr = bot.nmea.addr()
	}
	return in, nil
}

// SetFix is sim.set_fix's input.
type SetFix struct {
	Fix string `json:"fix" jsonschema:"rtk_fixed, rtk_float, dgps, 3d, 2d or none"`
}

func setFix(ctx context.Context, in SetFix) (none, error) {
	if err := bot.ready(ctx); err != nil {
		return none{}, err
	}
	if _, ok := fixSigma[in.Fix]; !ok {
		return none{}, sdk.Errorf(wire.CodeInvalidArgument, "sim.set_fix: fix %q: want rtk_fixed, rtk_float, dgps, 3d, 2d or none", in.Fix)
	}
	bot.mu.Lock()
	bot.r.fix = in.Fix
	bot.mu.Unlock()
	return none{}, nil
}

// readSettings reads every config key; a granted key without a value keeps
// its default. Errors name the key, the value and what is expected.
func readSettings(ctx context.Context) (settings, error) {
	set := defaults()
	vals, err := sdk.ConfigValues(ctx, configKeys...)
	if err != nil {
		return set, fmt.Errorf("simbot %w", err)
	}
	for _, key := range configKeys {
		v, ok := vals[key]
		if !ok {
			continue
		}
		if err := set.apply(key, v); err != nil {
			return set, sdk.Errorf(wire.CodeInvalidArgument, "simbot config %s %q: %v", key, v, err)
		}
	}
	return set, nil
}

// apply sets one config key from its string value.
func (s *settings) apply(key, v string) error {
	num := func(lo, hi float64) (float64, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= lo && f <= hi) {
			return 0, fmt.Errorf("want a number from %v to %v", lo, hi)
		}
		return f, nil
	}
	var err error
	switch key {
	case "start_lat":
		s.start.Lat, err = num(-89.9, 89.9)
	case "start_lon":
		s.start.Lon, err = num(-180, 180)
	case "start_heading_deg":
		s.headingDeg, err = num(-360, 360)
	case "time_scale":
		s.timeScale, err = num(0.01, 1000)
	case "max_speed_mps":
		s.maxSpeed, err = num(0.01, 50)
	case "max_accel_mps2":
		s.maxAccel, err = num(0.01, 100)
	case "max_decel_mps2":
		s.maxDecel, err = num(0.01, 100)
	case "max_yaw_rate_dps":
		var d float64
		d, err = num(1, 720)
		s.maxYawRate = d * math.Pi / 180
	case "battery_pct":
		s.battery, err = num(0, 100)
	case "drain_pct_per_km":
		s.drainPerKm, err = num(0, 1000)
	case "idle_drain_pct_per_h":
		s.idleDrainPH, err = num(0, 1000)
	case "fix":
		if _, ok := fixSigma[v]; !ok {
			return errors.New("want rtk_fixed, rtk_float, dgps, 3d, 2d or none")
		}
		s.fix = v
	case "seed":
		s.seed, err = strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errors.New("want an unsigned integer")
		}
	case "zones":
		s.zonesJSON = v
	case "nmea_addr":
		s.nmeaAddr = v
	case "nmea_interval":
		d, perr := time.ParseDuration(v)
		if perr != nil || d < 10*time.Millisecond || d > time.Minute {
			return errors.New("want a Go duration from 10ms to 1m")
		}
		s.nmeaEvery = d
	default:
		return errors.New("unknown key")
	}
	return err
}
