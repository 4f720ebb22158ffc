package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/sdk/wire"
)

func motionEngine(t *testing.T, rules policy.Rules, pose *policy.Pose) *policy.Engine {
	t.Helper()
	state, err := policy.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(context.Background(), policy.Config{
		Log: openLog(t, openStore(t)), State: state, Agents: map[string]policy.Rules{"rover-1": rules},
		Poses: func(agent string) (policy.Pose, bool) {
			if pose == nil || agent != "rover-1" {
				return policy.Pose{}, false
			}
			return *pose, true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// wantDecision authorizes a and wants it allowed (want "") or refused with
// a reason containing want.
func wantDecision(t *testing.T, e *policy.Engine, a policy.Action, want string) {
	t.Helper()
	_, err := e.Authorize(context.Background(), a)
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a refusal saying %q", err, want)
	}
}

func to(lat, lon float64) policy.Action {
	return drive(fmt.Sprintf(`{"lat":%v,"lon":%v,"speed":1}`, lat, lon), wire.EffectActuator)
}

func pct(f float64) *float64 { return &f }

func TestMotionRules(t *testing.T) {
	// The robot stands 300 m south of a 50 m pond; the site is a square
	// of about 1.1 km around both.
	here := policy.Pose{Lat: 52.5173, Lon: 13.405, Fix: policy.FixRTKFixed, BatteryPct: pct(80), Time: time.Now(), Source: "gnss"}
	pond := config.Zone{Name: "pond", Lat: 52.52, Lon: 13.405, RadiusM: 50}
	shed := config.Zone{Name: "shed", Polygon: [][]float64{{52.5185, 13.4060}, {52.5185, 13.4070}, {52.5195, 13.4070}, {52.5195, 13.4060}}}
	site := [][]float64{{52.515, 13.400}, {52.515, 13.410}, {52.525, 13.410}, {52.525, 13.400}}
	rules := policy.Rules{
		Actuators: []config.ActuatorRule{{Tool: "drive.to", KeepOut: []config.Zone{pond, shed}}},
		Motion:    config.Motion{MinFix: "rtk_float", BatteryReserve: 20, MaxPoseAge: config.Duration(5 * time.Second), Geofence: site},
	}
	stale := here
	stale.Time = time.Now().Add(-time.Minute)
	float := here
	float.Fix = policy.FixDGPS
	low := here
	low.BatteryPct = pct(10)
	tests := []struct {
		name   string
		pose   *policy.Pose
		action policy.Action
		want   string // "" allows
	}{
		{"a clear move", &here, to(52.5175, 13.4080), ""},
		{"the path through a circle", &here, to(52.523, 13.405), "passes 0 m from the centre of keep-out zone \"pond\""},
		{"the path through a polygon", &here, to(52.5200, 13.4075), "crosses keep-out zone \"shed\""},
		{"a target in a polygon", &here, to(52.5190, 13.4065), "inside keep-out zone \"shed\""},
		{"outside the geofence", &here, to(52.5175, 13.420), "outside the geofence"},
		{"another clear move, near the fence", &here, to(52.5175, 13.4095), ""},
		{"no pose", nil, to(52.5175, 13.4080), "position is unknown"},
		{"a stale pose", &stale, to(52.5175, 13.4080), "stale pose"},
		{"a fix below min_fix", &float, to(52.5175, 13.4080), "below min_fix"},
		{"battery below the reserve", &low, to(52.5175, 13.4080), "below the reserve"},
		{"NaN", &here, drive(`{"lat":"NaN","lon":13.4,"speed":1}`, wire.EffectActuator), "cannot be read"},
		{"half a target", &here, drive(`{"lat":52.5175,"speed":1}`, wire.EffectActuator), "no target position"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantDecision(t, motionEngine(t, rules, tt.pose), tt.action, tt.want)
		})
	}
}

func TestTeleop(t *testing.T) {
	here := policy.Pose{Lat: 52.5173, Lon: 13.405, Time: time.Now()}
	e := motionEngine(t, policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.to", MaxSpeed: 2}}}, &here)
	ctx := context.Background()
	if err := e.Teleop(ctx, "rover-1", viewer, true); err == nil {
		t.Fatal("a viewer took teleop")
	}
	if err := e.Teleop(ctx, "rover-1", operator, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authorize(ctx, to(52.5175, 13.408)); err == nil || !strings.Contains(err.Error(), "holds teleop") {
		t.Fatalf("the model moved the robot under teleop: %v", err)
	}
	mine := to(52.5175, 13.408)
	mine.Principal = operator
	if _, err := e.Authorize(ctx, mine); err != nil {
		t.Fatalf("the holder was refused: %v", err)
	}
	tooFast := mine
	tooFast.Args = json.RawMessage(`{"lat":52.5175,"lon":13.408,"speed":5}`)
	var we *wire.Error
	if _, err := e.Authorize(ctx, tooFast); !errors.As(err, &we) || !strings.Contains(we.Message, "above the limit") {
		t.Fatalf("the holder passed the hard limit: %v", err)
	}
	other := policy.Principal{Kind: policy.PrincipalOperator, ID: "eve", Role: policy.RoleOperator}
	if err := e.Teleop(ctx, "rover-1", other, false); err == nil {
		t.Fatal("another operator released someone else's teleop")
	}
	if err := e.Teleop(ctx, "rover-1", operator, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authorize(ctx, to(52.5175, 13.408)); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A velocity command (simbot's drive.velocity, ros.cmd_vel) carries linear
// m/s and a duration, not speed and a target: max_speed reads |linear|, and
// keep-out zones and the geofence are checked against everywhere the
// command can take the robot.
func TestVelocityCommands(t *testing.T) {
	here := policy.Pose{Lat: 52.5173, Lon: 13.405, Fix: policy.FixRTKFixed, Time: time.Now(), Source: "simbot"}
	pond := config.Zone{Name: "pond", Lat: 52.5180, Lon: 13.405, RadiusM: 30}                                                               // centre 78 m north
	shed := config.Zone{Name: "shed", Polygon: [][]float64{{52.5170, 13.4060}, {52.5170, 13.4070}, {52.5176, 13.4070}, {52.5176, 13.4060}}} // 68 m east
	site := [][]float64{{52.5160, 13.4030}, {52.5160, 13.4080}, {52.5190, 13.4080}, {52.5190, 13.4030}}                                     // 144 m west, 130 m south
	velocity := func(args string) policy.Action {
		a := drive(args, wire.EffectActuator)
		a.Name = "drive.velocity"
		return a
	}
	tests := []struct {
		name  string
		rules policy.Rules
		pose  *policy.Pose
		args  string
		want  string // "" allows
	}{
		{"under max_speed", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", MaxSpeed: 1.5}}}, &here, `{"linear":1.2,"angular":0.1,"duration":2}`, ""},
		{"over max_speed", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", MaxSpeed: 1.5}}}, &here, `{"linear":2,"angular":0,"duration":2}`, "speed 2.00 m/s is above the limit of 1.50 m/s"},
		{"backwards over max_speed", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", MaxSpeed: 1.5}}}, &here, `{"linear":-2,"angular":0,"duration":2}`, "speed 2.00 m/s is above the limit"},
		{"neither speed nor linear", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", MaxSpeed: 1.5}}}, &here, `{"angular":0.5,"duration":2}`, "carries no speed"},
		{"clear of every zone", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", KeepOut: []config.Zone{pond, shed}}}, Motion: config.Motion{Geofence: site}}, &here, `{"linear":1,"angular":0.3,"duration":20}`, ""},
		{"reaching a circle", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", KeepOut: []config.Zone{pond}}}}, &here, `{"linear":1,"angular":0,"duration":50}`, "into keep-out zone \"pond\""},
		{"reaching a polygon", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", KeepOut: []config.Zone{shed}}}}, &here, `{"linear":-1,"angular":0,"duration":70}`, "into keep-out zone \"shed\""},
		{"leaving the geofence", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity"}}, Motion: config.Motion{Geofence: site}}, &here, `{"linear":2,"angular":0,"duration":70}`, "out of the geofence"},
		{"no duration under zones", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", KeepOut: []config.Zone{pond}}}}, &here, `{"linear":1,"angular":0}`, "without a valid duration"},
		{"no pose under zones", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity", KeepOut: []config.Zone{pond}}}}, nil, `{"linear":1,"angular":0,"duration":1}`, "position is unknown"},
		{"NaN linear", policy.Rules{Actuators: []config.ActuatorRule{{Tool: "drive.velocity"}}}, &here, `{"linear":"NaN","duration":1}`, "cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantDecision(t, motionEngine(t, tt.rules, tt.pose), velocity(tt.args), tt.want)
		})
	}
}
