package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// Fix qualities, best first, as the gnss plugin names them.
const (
	FixRTKFixed = "rtk_fixed"
	FixRTKFloat = "rtk_float"
	FixDGPS     = "dgps"
	Fix3D       = "3d"
	Fix2D       = "2d"
	FixNone     = "none"
)

// fixSigma is the simulated receiver's horizontal noise (1σ, metres) by fix.
var fixSigma = map[string]float64{
	FixRTKFixed: 0.02, FixRTKFloat: 0.3, FixDGPS: 0.8, Fix3D: 2.5, Fix2D: 5, FixNone: 0,
}

// Modes the robot reports.
const (
	ModeIdle     = "idle"     // at rest, no command
	ModeDriving  = "driving"  // drive.to under way
	ModeVelocity = "velocity" // drive.velocity under way
	ModeStopping = "stopping" // stopped by command, still decelerating
	ModeBlocked  = "blocked"  // an obstacle zone is in the way; at rest
	ModeEmpty    = "battery_empty"
)

// arriveTol is how close drive.to must get to its target.
const arriveTol = 0.25

// maxSubstep bounds one integration step in simulated seconds.
const maxSubstep = 0.02

// settings are the simulated robot's parameters (config keys in main.go).
type settings struct {
	start       LatLon
	headingDeg  float64
	timeScale   float64
	maxSpeed    float64 // m/s
	maxAccel    float64 // m/s²
	maxDecel    float64 // m/s²
	maxYawRate  float64 // rad/s
	battery     float64 // % at start
	drainPerKm  float64 // % per km driven
	idleDrainPH float64 // % per hour
	fix         string
	seed        uint64
	zonesJSON   string
	nmeaAddr    string
	nmeaEvery   time.Duration
	step        time.Duration
}

func defaults() settings {
	return settings{
		start: LatLon{Lat: 52.520008, Lon: 13.404954}, timeScale: 1,
		maxSpeed: 1.5, maxAccel: 1, maxDecel: 2, maxYawRate: math.Pi / 2,
		battery: 100, drainPerKm: 5, idleDrainPH: 2, fix: FixRTKFixed, seed: 1,
		nmeaEvery: time.Second, step: 20 * time.Millisecond,
	}
}

type cmdKind int

const (
	cmdNone cmdKind = iota
	cmdGoto
	cmdVelocity
	cmdStop
)

type command struct {
	kind            cmdKind
	tx, ty, speed   float64 // goto target (local metres) and speed
	linear, angular float64 // velocity
	until           float64 // velocity ends at this sim time
}

// robot is the kinematic state: a unicycle (differential drive) with
// acceleration limits. Not safe for concurrent use; bot serialises it.
type robot struct {
	set     settings
	plane   plane
	zones   []zone
	x, y    float64 // metres east, north of start
	heading float64 // radians, compass: 0 north, clockwise
	v, w    float64 // m/s, rad/s (w positive clockwise, like heading)
	cmd     command
	blocked bool
	simTime float64 // seconds
	battery float64
	odo     float64
	fix     string
	rng     *rand.Rand
}

func newRobot(set settings, zones []zone) *robot {
	return &robot{
		set: set, plane: newPlane(set.start), zones: zones,
		heading: set.headingDeg * math.Pi / 180, battery: set.battery, fix: set.fix,
		rng: rand.New(rand.NewPCG(set.seed, 0x51b07)),
	}
}

// advance integrates dt simulated seconds in small steps.
func (r *robot) advance(dt float64) {
	for dt > 0 {
		h := min(dt, maxSubstep)
		r.step(h)
		dt -= h
	}
}

func (r *robot) step(dt float64) {
	wantV, wantW := r.wanted()
	// Speeding up is limited by the acceleration, slowing down (or
	// reversing through zero) by the deceleration.
	limit := r.set.maxDecel
	if math.Abs(wantV) > math.Abs(r.v) && wantV*r.v >= 0 {
		limit = r.set.maxAccel
	}
	r.v += clamp(wantV-r.v, limit*dt)
	// Below a millimetre per second is at rest (and reported so).
	if math.Abs(r.v) < 1e-3 && math.Abs(wantV) < 1e-3 {
		r.v = 0
	}
	r.w = clamp(wantW, r.set.maxYawRate)
	heading := math.Mod(r.heading+r.w*dt+2*math.Pi, 2*math.Pi)
	nx := r.x + r.v*math.Sin(heading)*dt
	ny := r.y + r.v*math.Cos(heading)*dt
	r.heading = heading
	if r.v != 0 && r.inZone(nx, ny) && !r.inZone(r.x, r.y) {
		// A bumper, not physics: it halts at the zone's edge.
		r.v, r.w, r.blocked, r.cmd = 0, 0, true, command{}
	} else {
		r.odo += math.Hypot(nx-r.x, ny-r.y)
		r.x, r.y = nx, ny
	}
	r.battery = math.Max(0, r.battery-math.Abs(r.v)*dt/1000*r.set.drainPerKm-dt/3600*r.set.idleDrainPH)
	r.simTime += dt
	if r.cmd.kind == cmdStop && r.v == 0 {
		r.cmd = command{}
	}
}

// wanted is the velocity the current command asks for now.
func (r *robot) wanted() (v, w float64) {
	if r.battery <= 0 {
		return 0, 0
	}
	switch c := &r.cmd; c.kind {
	case cmdGoto:
		dx, dy := c.tx-r.x, c.ty-r.y
		dist := math.Hypot(dx, dy)
		if dist < arriveTol {
			c.kind = cmdStop
			return 0, 0
		}
		errH := wrapPi(math.Atan2(dx, dy) - r.heading)
		w = 2 * errH
		// Slow enough to stop on the target at the deceleration limit;
		// turn on the spot while it faces away.
		v = math.Min(math.Min(c.speed, r.set.maxSpeed), math.Sqrt(2*r.set.maxDecel*dist))
		return v * math.Max(0, math.Cos(errH)), w
	case cmdVelocity:
		if r.simTime >= c.until {
			c.kind = cmdStop
			return 0, 0
		}
		return clamp(c.linear, r.set.maxSpeed), c.angular
	}
	return 0, 0
}

func (r *robot) inZone(x, y float64) bool {
	for _, z := range r.zones {
		if z.contains(x, y) {
			return true
		}
	}
	return false
}

func (r *robot) mode() string {
	switch {
	case r.battery <= 0:
		return ModeEmpty
	case r.cmd.kind == cmdGoto:
		return ModeDriving
	case r.cmd.kind == cmdVelocity:
		return ModeVelocity
	case r.v != 0 || r.w != 0:
		return ModeStopping
	case r.blocked:
		return ModeBlocked
	}
	return ModeIdle
}

// stop commands zero velocity; the robot decelerates at its limit.
func (r *robot) stop() {
	r.cmd = command{kind: cmdStop}
	r.w = 0
}

func (r *robot) goTo(tx, ty, speed float64) {
	r.cmd, r.blocked = command{kind: cmdGoto, tx: tx, ty: ty, speed: speed}, false
}

func (r *robot) velocity(linear, angular, duration float64) {
	r.cmd, r.blocked = command{kind: cmdVelocity, linear: linear, angular: angular, until: r.simTime + duration}, false
}

// measured is the position the simulated receiver reports: the truth plus
// Gaussian noise of the fix's σ; ok is false without a fix.
func (r *robot) measured() (ll LatLon, sigma float64, ok bool) {
	sigma = fixSigma[r.fix]
	if r.fix == FixNone {
		return LatLon{}, 0, false
	}
	return r.plane.toLatLon(r.x+r.rng.NormFloat64()*sigma, r.y+r.rng.NormFloat64()*sigma), sigma, true
}

func clamp(v, limit float64) float64 { return math.Max(-limit, math.Min(limit, v)) }
