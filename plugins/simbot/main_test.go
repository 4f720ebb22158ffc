package main

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adrianmo/go-nmea"

	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

// start loads the plugin in-process with config kv, on a fresh robot.
func start(t *testing.T, kv map[string]string) *plugintest.Plugin {
	t.Helper()
	reset()
	t.Cleanup(reset)
	return plugintest.New(t, plugintest.Config(kv))
}

// reset forgets the plugin process's robot, as a fresh process would.
func reset() {
	bot.mu.Lock()
	defer bot.mu.Unlock()
	if bot.nmea != nil {
		bot.nmea.ln.Close()
	}
	bot.r, bot.zones, bot.nmea = nil, nil, nil
}

func poseOf(t *testing.T, pt *plugintest.Plugin) Pose {
	t.Helper()
	p, err := plugintest.CallAs[Pose](pt, "robot.pose", none{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// distance is the distance in metres between a reported pose and ll.
func distance(p Pose, ll LatLon) float64 {
	x, y := newPlane(ll).toXY(LatLon{Lat: *p.Lat, Lon: *p.Lon})
	return math.Hypot(x, y)
}

// offset is the position dx metres east and dy north of ll.
func offset(ll LatLon, dx, dy float64) LatLon { return newPlane(ll).toLatLon(dx, dy) }

var origin = defaults().start

func TestDriveToApproachesTheTarget(t *testing.T) {
	pt := start(t, map[string]string{"time_scale": "10", "max_speed_mps": "2", "max_accel_mps2": "2"})
	target := offset(origin, 15, 20) // 25 m away, north-east
	acc, err := plugintest.CallAs[Accepted](pt, "drive.to", DriveTo{Lat: target.Lat, Lon: target.Lon, Speed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(acc.DistanceM-25) > 0.01 || math.Abs(acc.BearingDeg-36.87) > 0.01 || acc.Mode != ModeDriving {
		t.Errorf("drive.to answered %+v, want 25 m at 36.87°, driving", acc)
	}
	prev, moved := 25.0, false
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := poseOf(t, pt)
		d := distance(p, target)
		if p.Mode == ModeDriving && d < prev-0.05 {
			moved = true
			if p.SpeedMPS <= 0 {
				t.Fatalf("closing in (%.2f m) at speed %v", d, p.SpeedMPS)
			}
		}
		if d > prev+0.2 {
			t.Fatalf("moving away from the target: %.2f m, was %.2f", d, prev)
		}
		prev = min(prev, d)
		if p.Mode == ModeIdle && p.SpeedMPS == 0 {
			if d > arriveTol+0.1 || !moved {
				t.Fatalf("at rest %.2f m from the target (moved: %v): %+v", d, moved, p)
			}
			if p.OdometerM < 24.5 || p.BatteryPct >= 100 {
				t.Errorf("after 25 m: odometer %v m, battery %v%%", p.OdometerM, p.BatteryPct)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not there after 20 s (200 simulated): %+v, %.2f m away", p, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSpeed polls until the speed satisfies ok.
func waitSpeed(t *testing.T, pt *plugintest.Plugin, ok func(float64) bool, within time.Duration) Pose {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p := poseOf(t, pt)
		if ok(p.SpeedMPS) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("speed %v after %v", p.SpeedMPS, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestStopReachesRestWithinTheDecelerationTime: robot.stop brings 1.5 m/s to
// 0 within 1.5 / max_decel seconds (plus one physics step and slack for a
// loaded machine).
func TestStopReachesRestWithinTheDecelerationTime(t *testing.T) {
	pt := start(t, map[string]string{"max_speed_mps": "1.5", "max_accel_mps2": "5", "max_decel_mps2": "3"})
	if _, err := pt.Call("drive.velocity", DriveVelocity{Linear: 1.5, Duration: 30}); err != nil {
		t.Fatal(err)
	}
	waitSpeed(t, pt, func(v float64) bool { return v >= 1.5 }, 5*time.Second)
	begin := time.Now()
	st, err := plugintest.CallAs[Stopped](pt, "robot.stop", none{})
	if err != nil {
		t.Fatal(err)
	}
	if st.SpeedMPS != 1.5 || st.RestInS != 0.5 {
		t.Errorf("robot.stop = %+v, want from 1.5 m/s, at rest in 0.5 s", st)
	}
	p := waitSpeed(t, pt, func(v float64) bool { return v == 0 }, 5*time.Second)
	took := time.Since(begin)
	t.Logf("1.5 m/s → 0 in %v (deceleration time 500ms)", took)
	if took > 500*time.Millisecond+150*time.Millisecond {
		t.Errorf("at rest after %v, want within the deceleration time 500ms (+150ms)", took)
	}
	if p.Mode != ModeIdle {
		t.Errorf("mode at rest %q, want idle: %+v", p.Mode, p)
	}
}

// TestObstacleZoneBlocksTheRobot: driving through a zone halts at its edge.
func TestObstacleZoneBlocksTheRobot(t *testing.T) {
	rock := offset(origin, 0, 10)
	pt := start(t, map[string]string{"time_scale": "10", "zones": `[{"name":"rock","lat":` + ftoa(rock.Lat) + `,"lon":` + ftoa(rock.Lon) + `,"radius_m":3}]`})
	info, err := plugintest.CallAs[Info](pt, "sim.info", none{})
	if err != nil || len(info.Zones) != 1 || info.Zones[0].Name != "rock" || info.Watchdog != "300ms" {
		t.Fatalf("sim.info = %+v, %v", info, err)
	}
	target := offset(origin, 0, 20)
	if _, err := pt.Call("drive.to", DriveTo{Lat: target.Lat, Lon: target.Lon, Speed: 1.5}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := poseOf(t, pt)
		if p.Mode == ModeBlocked {
			if d := distance(p, rock); d < 2.9 || d > 3.3 {
				t.Errorf("blocked %.2f m from the rock's centre, want at its 3 m edge", d)
			}
			return
		}
		if p.Mode == ModeIdle || time.Now().After(deadline) {
			t.Fatalf("drove through the rock: %+v, %.2f m from the target", p, distance(p, target))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func TestFixQuality(t *testing.T) {
	pt := start(t, map[string]string{"fix": "3d", "seed": "7"})
	// 3d: σ 2.5 m around the start.
	var sum float64
	const n = 200
	for range n {
		p := poseOf(t, pt)
		if p.Fix != Fix3D || p.AccuracyM != 2.5 || p.Lat == nil {
			t.Fatalf("pose with fix 3d: %+v", p)
		}
		sum += distance(p, origin)
	}
	// The mean of a Rayleigh(σ) distance is σ·√(π/2) ≈ 3.13 m.
	if mean := sum / n; mean < 2.5 || mean > 3.8 {
		t.Errorf("mean error %.2f m with σ 2.5, want about 3.13", mean)
	}
	if _, err := pt.Call("sim.set_fix", SetFix{Fix: FixNone}); err != nil {
		t.Fatal(err)
	}
	if p := poseOf(t, pt); p.Fix != FixNone || p.Lat != nil || p.Lon != nil {
		t.Errorf("pose without a fix: %+v, want no position", p)
	}
	if _, err := pt.Call("sim.set_fix", SetFix{Fix: "rtk"}); !isCode(err, wire.CodeInvalidArgument) {
		t.Errorf("sim.set_fix rtk: %v, want invalid_argument", err)
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}

// TestBadInput: commands outside the robot's limits or the globe, and bad
// config, are refused with what was expected; nothing moves.
func TestBadInput(t *testing.T) {
	pt := start(t, nil)
	for _, c := range []struct {
		tool string
		in   any
		want string
	}{
		{"drive.to", DriveTo{Lat: 91, Lon: 13, Speed: 1}, "lat 91: want a number from -90 to 90"},
		{"drive.to", DriveTo{Lat: 52, Lon: 181, Speed: 1}, "lon 181"},
		{"drive.to", DriveTo{Lat: 52, Lon: 13, Speed: 9}, "speed 9: want more than 0 and at most 1.5"},
		{"drive.to", DriveTo{Lat: 52, Lon: 13, Speed: 0}, "speed 0"},
		{"drive.to", map[string]any{"lat": 52, "lon": 13}, "speed"},
		{"drive.to", map[string]any{"lat": "north", "lon": 13, "speed": 1}, "lat"},
		{"drive.velocity", DriveVelocity{Linear: 2, Duration: 1}, "linear 2: want from -1.5 to 1.5"},
		{"drive.velocity", DriveVelocity{Linear: 1, Angular: 3, Duration: 1}, "angular 3"},
		{"drive.velocity", DriveVelocity{Linear: 1, Duration: 0}, "duration 0"},
		{"drive.velocity", DriveVelocity{Linear: 1, Duration: 61}, "duration 61"},
	} {
		_, err := pt.Call(c.tool, c.in)
		if !isCode(err, wire.CodeInvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want invalid_argument with %q", c.tool, c.in, err, c.want)
		}
	}
	if p := poseOf(t, pt); p.Mode != ModeIdle || p.SpeedMPS != 0 {
		t.Errorf("after refused commands: %+v, want idle", p)
	}

	for key, val := range map[string]string{
		"time_scale":    "0",
		"fix":           "rtk",
		"zones":         `[{"name":"x","lat":52,"lon":13}]`,
		"nmea_interval": "1ms",
		"max_speed_mps": "fast",
	} {
		reset()
		pt := plugintest.New(t, plugintest.Config(map[string]string{key: val}))
		_, err := pt.Call("robot.pose", none{})
		if !isCode(err, wire.CodeInvalidArgument) || !strings.Contains(err.Error(), key) {
			t.Errorf("config %s %q: %v, want invalid_argument naming the key", key, val, err)
		}
	}
}

// TestNMEA: the sentences parse with an independent NMEA library (go-nmea)
// and say what the pose says; the TCP server serves them.
func TestNMEA(t *testing.T) {
	pt := start(t, map[string]string{"nmea_addr": "127.0.0.1:0", "nmea_interval": "20ms", "fix": "rtk_float", "start_lat": "-33.8568", "start_lon": "151.2153", "start_heading_deg": "90"})
	if _, err := pt.Call("drive.velocity", DriveVelocity{Linear: 1, Duration: 30}); err != nil {
		t.Fatal(err)
	}
	info, err := plugintest.CallAs[Info](pt, "sim.info", none{})
	if err != nil || info.NMEAAddr == "" {
		t.Fatalf("sim.info = %+v, %v", info, err)
	}
	c, err := net.Dial("tcp", info.NMEAAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := bufio.NewScanner(c)
	var gga nmea.GGA
	var rmc nmea.RMC
	for sc.Scan() && (gga.Latitude == 0 || rmc.Speed < 1.94) {
		s, err := nmea.Parse(sc.Text())
		if err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		switch s := s.(type) {
		case nmea.GGA:
			gga = s
		case nmea.RMC:
			rmc = s
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if gga.FixQuality != nmea.FRTK || math.Abs(gga.Latitude - -33.8568) > 1e-4 || math.Abs(gga.Longitude-151.2153) > 1e-3 {
		t.Errorf("GGA %+v, want RTK float near the start", gga)
	}
	if rmc.Validity != nmea.ValidRMC || math.Abs(rmc.Speed-1/0.514444) > 0.01 || math.Abs(rmc.Course-90) > 0.5 || rmc.FFAMode != "F" {
		t.Errorf("RMC %+v, want valid, 1 m/s (1.944 kn), course 90, mode F", rmc)
	}
}

func TestNMEASentencesByFix(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 5, 7, 250e6, time.UTC)
	for fix, want := range map[string]string{FixRTKFixed: nmea.RTK, FixRTKFloat: nmea.FRTK, FixDGPS: nmea.DGPS, Fix3D: nmea.GPS, Fix2D: nmea.GPS, FixNone: nmea.Invalid} {
		out := nmeaSentences(sample{at: at, ll: LatLon{Lat: 52.5, Lon: -0.25}, hasFix: fix != FixNone, fix: fix, sigma: fixSigma[fix], speed: 0.5, course: 359.96})
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %q", fix, out)
		}
		s, err := nmea.Parse(lines[0])
		if err != nil {
			t.Fatalf("%s: %q: %v", fix, lines[0], err)
		}
		gga := s.(nmea.GGA)
		if gga.FixQuality != want || gga.Time.Hour != 9 || gga.Time.Second != 7 || gga.Time.Millisecond != 250 {
			t.Errorf("%s: GGA %+v, want quality %s at 09:05:07.25", fix, gga, want)
		}
		if fix != FixNone && (math.Abs(gga.Latitude-52.5) > 1e-7 || math.Abs(gga.Longitude - -0.25) > 1e-7) {
			t.Errorf("%s: GGA at %v,%v, want 52.5,-0.25", fix, gga.Latitude, gga.Longitude)
		}
		s, err = nmea.Parse(lines[1])
		if err != nil {
			t.Fatalf("%s: %q: %v", fix, lines[1], err)
		}
		if rmc := s.(nmea.RMC); rmc.Date.DD != 1 || rmc.Date.MM != 12 || rmc.Date.YY != 26 || (fix == FixNone) != (rmc.Validity == nmea.InvalidRMC) {
			t.Errorf("%s: RMC %+v", fix, rmc)
		}
	}
}

// FuzzZones: the zones parser never panics, and what it accepts it can test
// points against.
func FuzzZones(f *testing.F) {
	f.Add(`[{"name":"rock","lat":52.52,"lon":13.4,"radius_m":3}]`)
	f.Add(`[{"name":"pond","polygon":[[52.52,13.4],[52.521,13.4],[52.521,13.401]]}]`)
	f.Add(`[{"name":"x","polygon":[[1,2]]}]`)
	f.Add(`{}`)
	p := newPlane(origin)
	f.Fuzz(func(t *testing.T, s string) {
		zs, local, err := parseZones(s, p)
		if err != nil {
			return
		}
		if len(zs) != len(local) {
			t.Fatalf("%d zones, %d local", len(zs), len(local))
		}
		for _, z := range local {
			z.contains(0, 0)
		}
	})
}

// FuzzSettings: every config value is accepted within its documented
// range or refused; accepted values keep the robot's physics finite.
func FuzzSettings(f *testing.F) {
	for _, k := range configKeys {
		f.Add(k, "1")
	}
	f.Add("time_scale", "NaN")
	f.Add("max_decel_mps2", "-1")
	f.Fuzz(func(t *testing.T, key, val string) {
		s := defaults()
		if err := s.apply(key, val); err != nil {
			return
		}
		if key == "zones" || key == "nmea_addr" {
			return
		}
		r := newRobot(s, nil)
		r.velocity(s.maxSpeed, s.maxYawRate, 1)
		r.advance(0.5)
		if math.IsNaN(r.x) || math.IsNaN(r.y) || math.IsNaN(r.v) || math.IsInf(r.x, 0) {
			t.Fatalf("%s=%q: state %+v", key, val, r)
		}
	})
}

// TestHostStopBringsItToRest: the agent's stop (Host.StopAll, as /stop
// calls it) reaches the stop handler, which is acknowledged at once while
// the robot decelerates to rest.
func TestHostStopBringsItToRest(t *testing.T) {
	pt := start(t, map[string]string{"max_accel_mps2": "5", "max_decel_mps2": "3"})
	if _, err := pt.Call("drive.velocity", DriveVelocity{Linear: 1.5, Duration: 30}); err != nil {
		t.Fatal(err)
	}
	waitSpeed(t, pt, func(v float64) bool { return v >= 1.5 }, 5*time.Second)
	res := pt.StopAll(context.Background())
	if len(res) != 1 || !res[0].Acked || res[0].Took > 100*time.Millisecond {
		t.Fatalf("StopAll = %+v, want acknowledged at once", res)
	}
	if p := poseOf(t, pt); p.SpeedMPS == 0 || p.Mode != ModeStopping {
		t.Errorf("just after the stop: %+v, want still decelerating (mode stopping)", p)
	}
	waitSpeed(t, pt, func(v float64) bool { return v == 0 }, 650*time.Millisecond)
}

// TestStartsAtLoad: the robot is the run hook, so it serves NMEA as soon as
// the host has loaded the plugin — a gnss plugin reading it needs no call to
// simbot first — and unloading it closes the port.
func TestStartsAtLoad(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pt := start(t, map[string]string{"nmea_addr": addr, "nmea_interval": "20ms"})
	var c net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err = net.Dial("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("no NMEA on %s without a call: %v", addr, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "$GNGGA") && !strings.HasPrefix(line, "$GPGGA") {
		t.Fatalf("first line %q, %v; want a GGA sentence", line, err)
	}
	c.Close()
	pt.Unload()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts after the unload", addr)
		}
	}
}
