// Command ros is the depai plugin for ROS 1 robots, natively over TCPROS
// through github.com/aler9/goroslib: it publishes geometry_msgs/Twist on
// cmd_vel (the actuator tool ros.cmd_vel, republished at rate_hz for its
// duration, as robot bases expect), subscribes nav_msgs/Odometry and
// sensor_msgs/NavSatFix into readings (the sensor "pose", in the shape of
// plugins/simbot's), and calls std_srvs services from an allowlist (the
// actuator tool ros.call: a service such as /dock moves the robot).
//
// Its stop handler (the agent's /stop, unload, shutdown, its 500 ms
// watchdog, a lost agent) ends any command and publishes a zero Twist.
//
// It is a process plugin, not WASM: a ROS node serves TCP (its slave API
// and TCPROS) and runs its own goroutines between calls, and the watchdog
// needs a process. A process plugin is trusted native code with the agent
// user's network: grant it only on a robot you trust it to drive.
//
// Config (granted keys; each is optional):
//
//	master        the ROS master, host:port or http://host:port/ (127.0.0.1:11311)
//	node_name     this node's name (depai)
//	node_host     the address this node binds and advertises, like ROS_IP (127.0.0.1)
//	cmd_vel       topic (/cmd_vel); odom (/odom); fix (/fix)
//	max_linear    m/s (1); max_angular rad/s (1); rate_hz (10)
//	services      the services ros.call may call, "name:type" comma-separated,
//	              type trigger | set_bool | empty, e.g. "/dock:trigger,/brake:set_bool"
//
// The node is the plugin's run hook (sdk.Run): it joins the master as soon
// as the host has loaded the plugin, and again with backoff (0.25 s to 5 s)
// while the master is unreachable; calls meanwhile answer unavailable
// (retryable) with the reason. A refused config is answered to every call.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aler9/goroslib"
	"github.com/aler9/goroslib/pkg/msgs/geometry_msgs"
	"github.com/aler9/goroslib/pkg/msgs/nav_msgs"
	"github.com/aler9/goroslib/pkg/msgs/sensor_msgs"
	"github.com/aler9/goroslib/pkg/msgs/std_srvs"

	"github.com/depai/depai/plugins/internal/live"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// Watchdog is how long a command stands without the agent's heartbeat.
const Watchdog = 500 * time.Millisecond

// PoseInterval is how often the host polls the pose sensor.
const PoseInterval = 500 * time.Millisecond

var configKeys = []string{"master", "node_name", "node_host", "cmd_vel", "odom", "fix", "max_linear", "max_angular", "rate_hz", "services"}

func init() {
	sdk.Plugin("ros", "0.1.0")
	sdk.Requests(wire.Capabilities{Actuator: true, Config: configKeys})
	sdk.Tool("ros.cmd_vel", "Drive: publish linear m/s (forward, negative backwards) and angular rad/s (counter-clockwise, as in ROS) on cmd_vel for duration seconds, then zero.", cmdVel, sdk.Actuator())
	sdk.Tool("ros.call", "Call an allowed ROS service (std_srvs Trigger, SetBool or Empty); data is SetBool's argument.", callService, sdk.Actuator())
	// Stopping is never gated: a safety rule must not stand between an
	// operator and a robot coming to rest.
	sdk.Tool("ros.stop", "Stop: end any command and publish a zero Twist on cmd_vel.", rosStop)
	sdk.Tool("ros.odom", "The latest nav_msgs/Odometry: position, heading, velocity.", latestOdom)
	sdk.Tool("ros.fix", "The latest sensor_msgs/NavSatFix: position and fix quality.", latestFix)
	sdk.Sensor("pose", "The robot's pose from odometry and GNSS: lat, lon, heading_deg, speed_mps, fix, mode, time.", PoseInterval, pose)
	sdk.OnStop(onStop)
	sdk.Watchdog(Watchdog)
	sdk.Run(link.runHook)
}

func main() { sdk.Main() }

// settings are the plugin's config.
type settings struct {
	master, nodeName, nodeHost string
	cmdVel, odom, fix          string
	maxLinear, maxAngular      float64
	rate                       float64
	services                   map[string]string // name → trigger | set_bool | empty
}

func defaults() settings {
	return settings{
		master: "127.0.0.1:11311", nodeName: "depai", nodeHost: "127.0.0.1",
		cmdVel: "/cmd_vel", odom: "/odom", fix: "/fix", maxLinear: 1, maxAngular: 1, rate: 10,
		services: map[string]string{},
	}
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
	topic := func() (string, error) {
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t") {
			return "", errors.New("want an absolute ROS name such as /cmd_vel")
		}
		return v, nil
	}
	var err error
	switch key {
	case "master":
		s.master, err = masterAddr(v)
	case "node_name":
		if v == "" || strings.ContainsAny(v, "/ \t") {
			return errors.New("want a plain ROS node name such as depai")
		}
		s.nodeName = v
	case "node_host":
		s.nodeHost = v
	case "cmd_vel":
		s.cmdVel, err = topic()
	case "odom":
		s.odom, err = topic()
	case "fix":
		s.fix, err = topic()
	case "max_linear":
		s.maxLinear, err = num(0.01, 20)
	case "max_angular":
		s.maxAngular, err = num(0.01, 20)
	case "rate_hz":
		s.rate, err = num(1, 100)
	case "services":
		s.services, err = parseServices(v)
	default:
		return errors.New("unknown key")
	}
	return err
}

// masterAddr accepts host:port or a ROS_MASTER_URI (http://host:port/).
func masterAddr(v string) (string, error) {
	if strings.HasPrefix(v, "http://") {
		u, err := url.Parse(v)
		if err != nil || u.Port() == "" {
			return "", errors.New("want host:port or http://host:port/")
		}
		return u.Host, nil
	}
	if _, p, ok := strings.Cut(v, ":"); !ok || p == "" {
		return "", errors.New("want host:port or http://host:port/")
	}
	return v, nil
}

// parseServices reads "name:type,name:type".
func parseServices(v string) (map[string]string, error) {
	out := map[string]string{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, typ, ok := strings.Cut(item, ":")
		if !ok || !strings.HasPrefix(name, "/") {
			return nil, fmt.Errorf("%q: want /name:type", item)
		}
		switch typ {
		case "trigger", "set_bool", "empty":
		default:
			return nil, fmt.Errorf("%q: type %q: want trigger, set_bool or empty", item, typ)
		}
		out[name] = typ
	}
	return out, nil
}

func readSettings(ctx context.Context) (settings, error) {
	set := defaults()
	vals, err := sdk.ConfigValues(ctx, configKeys...)
	if err != nil {
		return set, fmt.Errorf("ros %w", err)
	}
	for _, key := range configKeys {
		v, ok := vals[key]
		if !ok {
			continue
		}
		if err := set.apply(key, v); err != nil {
			return set, sdk.Errorf(wire.CodeInvalidArgument, "ros config %s %q: %v", key, v, err)
		}
	}
	return set, nil
}

// link is the plugin's one ROS node. The SDK registers handlers in init()
// and has no per-instance state, so it lives here. mu guards the fields;
// it is never held while calling into ROS.
var link node

type node struct {
	mu     sync.Mutex
	tried  chan struct{} // closed when the run hook's first join has ended
	err    error         // why there is no node: the refused config or the last join's failure
	set    settings
	n      *goroslib.Node
	pub    *goroslib.Publisher
	odom   *nav_msgs.Odometry
	odomAt time.Time
	fix    *sensor_msgs.NavSatFix
	fixAt  time.Time
	cancel context.CancelFunc // ends the running cmd_vel command
	moving bool
}

// How long the run hook waits between joins while the master is down.
const (
	rejoinMin = 250 * time.Millisecond
	rejoinMax = 5 * time.Second
)

// triedLocked is the channel the first join closes.
func (l *node) triedLocked() chan struct{} {
	if l.tried == nil {
		l.tried = make(chan struct{})
	}
	return l.tried
}

// runHook reads the config and joins the master, retrying while it is
// unreachable; the node lives until the plugin is unloaded.
func (l *node) runHook(ctx context.Context) error {
	l.mu.Lock()
	tried := l.triedLocked()
	l.mu.Unlock()
	report := func(err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.err = err
		select {
		case <-tried:
		default:
			close(tried)
		}
	}
	set, err := readSettings(ctx)
	if err != nil {
		sdk.Log(ctx, slog.LevelWarn, "ros: not started", "err", err.Error())
		report(err)
		<-ctx.Done()
		return nil
	}
	var n *goroslib.Node
	retried := false
	for wait := rejoinMin; ; wait = min(2*wait, rejoinMax) {
		if n, err = l.join(set); err == nil {
			break
		}
		if !retried { // once: the retries would flood the log
			sdk.Log(ctx, slog.LevelWarn, "ros: cannot join the master; retrying", "err", err.Error())
		}
		retried = true
		report(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	report(nil)
	if retried {
		sdk.Log(ctx, slog.LevelInfo, "ros: joined the master", "master", set.master)
	}
	<-ctx.Done()
	l.mu.Lock()
	mine := l.n == n // a test binary loads the plugin several times
	if mine {
		l.n, l.pub = nil, nil
	}
	l.mu.Unlock()
	if mine {
		n.Close()
	}
	return nil
}

// ready waits (up to live.DefaultWait) for the run hook's first join and
// reports why there is no node, if there is none; every handler starts
// with it.
func (l *node) ready(ctx context.Context) error {
	l.mu.Lock()
	tried := l.triedLocked()
	l.mu.Unlock()
	t := time.NewTimer(live.DefaultWait)
	defer t.Stop()
	select {
	case <-tried:
	case <-ctx.Done():
	case <-t.C:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.n != nil:
		return nil
	case l.err != nil:
		return l.err
	}
	return &wire.Error{Code: wire.CodeUnavailable, Retryable: true, Message: "ros: the node has not joined the master yet"}
}

// join starts the node: the publisher and the subscribers the handlers
// read.
func (l *node) join(set settings) (*goroslib.Node, error) {
	n, err := goroslib.NewNode(goroslib.NodeConf{
		Name: set.nodeName, MasterAddress: set.master, Host: set.nodeHost,
		// Its log goes to the node's own stdout (the agent's log, under the
		// plugin's name) and /rosout; colour codes would garble the former.
		LogDestinations: goroslib.LogDestinationRosout,
	})
	if err != nil {
		return nil, &wire.Error{Code: wire.CodeUnavailable, Retryable: true, Message: fmt.Sprintf("ros: cannot join the master at %s: %v", set.master, err)}
	}
	pub, err := goroslib.NewPublisher(goroslib.PublisherConf{Node: n, Topic: set.cmdVel, Msg: &geometry_msgs.Twist{}})
	if err == nil {
		_, err = goroslib.NewSubscriber(goroslib.SubscriberConf{Node: n, Topic: set.odom, Callback: func(m *nav_msgs.Odometry) {
			l.mu.Lock()
			l.odom, l.odomAt = m, time.Now()
			l.mu.Unlock()
		}})
	}
	if err == nil {
		_, err = goroslib.NewSubscriber(goroslib.SubscriberConf{Node: n, Topic: set.fix, Callback: func(m *sensor_msgs.NavSatFix) {
			l.mu.Lock()
			l.fix, l.fixAt = m, time.Now()
			l.mu.Unlock()
		}})
	}
	if err != nil {
		n.Close()
		return nil, &wire.Error{Code: wire.CodeUnavailable, Retryable: true, Message: fmt.Sprintf("ros: %v", err)}
	}
	l.mu.Lock()
	l.set, l.n, l.pub = set, n, pub
	l.mu.Unlock()
	return n, nil
}

// CmdVel is ros.cmd_vel's input: the names a safety policy reads.
type CmdVel struct {
	Linear   float64 `json:"linear" jsonschema:"m/s along the robot's x axis, negative backwards; at most max_linear either way"`
	Angular  float64 `json:"angular" jsonschema:"rad/s about z, positive counter-clockwise; at most max_angular either way"`
	Duration float64 `json:"duration" jsonschema:"seconds, more than 0 and at most 60; then a zero Twist"`
}

// Published answers a command.
type Published struct {
	Topic string `json:"topic"`
	Until string `json:"until,omitempty"` // RFC 3339
}

func cmdVel(ctx context.Context, in CmdVel) (Published, error) {
	if err := link.ready(ctx); err != nil {
		return Published{}, err
	}
	link.mu.Lock()
	set := link.set
	link.mu.Unlock()
	if err := bounded("linear", in.Linear, set.maxLinear); err != nil {
		return Published{}, err
	}
	if err := bounded("angular", in.Angular, set.maxAngular); err != nil {
		return Published{}, err
	}
	if !(in.Duration > 0 && in.Duration <= 60) {
		return Published{}, sdk.Errorf(wire.CodeInvalidArgument, "ros.cmd_vel: duration %v: want seconds, more than 0 and at most 60", in.Duration)
	}
	until := time.Now().Add(time.Duration(in.Duration * float64(time.Second)))
	cctx, cancel := context.WithDeadline(context.Background(), until)
	twist := &geometry_msgs.Twist{Linear: geometry_msgs.Vector3{X: in.Linear}, Angular: geometry_msgs.Vector3{Z: in.Angular}}
	link.mu.Lock()
	if link.cancel != nil {
		link.cancel()
	}
	link.cancel, link.moving = cancel, true
	pub := link.pub
	link.mu.Unlock()
	go link.drive(cctx, pub, twist, time.Duration(float64(time.Second)/set.rate))
	return Published{Topic: set.cmdVel, Until: until.UTC().Format(time.RFC3339Nano)}, nil
}

// drive republishes twist every period until ctx ends, then publishes zero
// unless a newer command took over.
func (l *node) drive(ctx context.Context, pub *goroslib.Publisher, twist *geometry_msgs.Twist, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		pub.Write(twist)
		select {
		case <-ctx.Done():
			l.mu.Lock()
			superseded := l.cancel != nil && ctx.Err() == context.Canceled
			if !superseded {
				l.moving = false
			}
			l.mu.Unlock()
			if !superseded {
				pub.Write(&geometry_msgs.Twist{})
			}
			return
		case <-tick.C:
		}
	}
}

func bounded(what string, v, max float64) error {
	if math.IsNaN(v) || v > max || v < -max {
		return sdk.Errorf(wire.CodeInvalidArgument, "ros.cmd_vel: %s %v: want from %v to %v (this robot's limit)", what, v, -max, max)
	}
	return nil
}

// stopNow ends any command and publishes a zero Twist.
func (l *node) stopNow() bool {
	l.mu.Lock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
	l.moving = false
	pub := l.pub
	l.mu.Unlock()
	if pub == nil {
		return false
	}
	pub.Write(&geometry_msgs.Twist{})
	return true
}

type none struct{}

// Stopped answers ros.stop.
type Stopped struct {
	Topic string `json:"topic"`
}

func rosStop(ctx context.Context, _ none) (Stopped, error) {
	if err := link.ready(ctx); err != nil {
		return Stopped{}, err
	}
	link.stopNow()
	link.mu.Lock()
	defer link.mu.Unlock()
	return Stopped{Topic: link.set.cmdVel}, nil
}

// hostLostFlush is how long the stop handler lets the zero Twist travel
// before the process exits with the agent gone.
const hostLostFlush = 200 * time.Millisecond

func onStop(ctx context.Context) error {
	if !link.stopNow() || sdk.StopReason(ctx) != wire.StopHostLost {
		return nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(hostLostFlush):
	}
	return nil
}

// Call is ros.call's input.
type Call struct {
	Service string `json:"service" jsonschema:"a service the config's services allows, e.g. /dock"`
	Data    bool   `json:"data,omitempty" jsonschema:"SetBool's data"`
}

// CallResult is a service's answer (Empty answers success).
type CallResult struct {
	Success bool   `json:"success"`
	Message string `json:"message,omitempty"`
}

func callService(ctx context.Context, in Call) (CallResult, error) {
	if err := link.ready(ctx); err != nil {
		return CallResult{}, err
	}
	link.mu.Lock()
	typ, ok := link.set.services[in.Service]
	n := link.n
	link.mu.Unlock()
	if !ok {
		return CallResult{}, sdk.Errorf(wire.CodeDenied, "ros.call: service %q is not in this plugin's services config", in.Service)
	}
	var srv, req, res any
	switch typ {
	case "trigger":
		srv, req, res = &std_srvs.Trigger{}, &std_srvs.TriggerReq{}, &std_srvs.TriggerRes{}
	case "set_bool":
		srv, req, res = &std_srvs.SetBool{}, &std_srvs.SetBoolReq{Data: in.Data}, &std_srvs.SetBoolRes{}
	default:
		srv, req, res = &std_srvs.Empty{}, &std_srvs.EmptyReq{}, &std_srvs.EmptyRes{}
	}
	sc, err := goroslib.NewServiceClient(goroslib.ServiceClientConf{Node: n, Name: in.Service, Srv: srv})
	if err != nil {
		return CallResult{}, sdk.Errorf(wire.CodeUnavailable, "ros.call %s: %v", in.Service, err)
	}
	defer sc.Close()
	if err := sc.CallContext(ctx, req, res); err != nil {
		return CallResult{}, sdk.Errorf(wire.CodeUnavailable, "ros.call %s: %v", in.Service, err)
	}
	switch r := res.(type) {
	case *std_srvs.TriggerRes:
		return CallResult{Success: r.Success, Message: r.Message}, nil
	case *std_srvs.SetBoolRes:
		return CallResult{Success: r.Success, Message: r.Message}, nil
	}
	return CallResult{Success: true}, nil
}

func latestOdom(ctx context.Context, _ none) (OdomOut, error) {
	if err := link.ready(ctx); err != nil {
		return OdomOut{}, err
	}
	link.mu.Lock()
	defer link.mu.Unlock()
	if link.odom == nil {
		return OdomOut{}, sdk.Errorf(wire.CodeNotFound, "ros.odom: no message on %s yet", link.set.odom)
	}
	return odomOut(link.odom, link.odomAt), nil
}

// OdomOut is ros.odom's answer. HeadingDeg is the compass heading (0
// north, clockwise) of the yaw, taking the odometry frame's x axis as east
// (REP 103's ENU).
type OdomOut struct {
	X          float64   `json:"x"`
	Y          float64   `json:"y"`
	YawDeg     float64   `json:"yaw_deg"` // counter-clockwise from x, as in ROS
	HeadingDeg float64   `json:"heading_deg"`
	Linear     float64   `json:"linear"`  // m/s along the child frame's x
	Angular    float64   `json:"angular"` // rad/s about z
	Frame      string    `json:"frame"`
	Received   time.Time `json:"received"`
}

func odomOut(m *nav_msgs.Odometry, at time.Time) OdomOut {
	q := m.Pose.Pose.Orientation
	yaw := math.Atan2(2*(q.W*q.Z+q.X*q.Y), 1-2*(q.Y*q.Y+q.Z*q.Z)) * 180 / math.Pi
	return OdomOut{
		X: m.Pose.Pose.Position.X, Y: m.Pose.Pose.Position.Y,
		YawDeg: round(yaw, 3), HeadingDeg: math.Mod(round(450-yaw, 3), 360),
		Linear: m.Twist.Twist.Linear.X, Angular: m.Twist.Twist.Angular.Z,
		Frame: m.Header.FrameId, Received: at.UTC(),
	}
}

// FixOut is ros.fix's answer.
type FixOut struct {
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	Alt       float64   `json:"alt"`
	Fix       string    `json:"fix"`
	AccuracyM float64   `json:"accuracy_m,omitempty"` // from the covariance, when known
	Received  time.Time `json:"received"`
}

// fixQuality maps NavSatStatus to depai's fix names. GBAS is how ROS GNSS
// drivers report RTK, but not whether it is fixed or float: the lower of
// the two is reported, so a safety rule never trusts more than it has.
func fixQuality(status int8) string {
	switch status {
	case sensor_msgs.NavSatStatus_STATUS_FIX:
		return "3d"
	case sensor_msgs.NavSatStatus_STATUS_SBAS_FIX:
		return "dgps"
	case sensor_msgs.NavSatStatus_STATUS_GBAS_FIX:
		return "rtk_float"
	}
	return "none"
}

func fixOut(m *sensor_msgs.NavSatFix, at time.Time) FixOut {
	out := FixOut{Lat: m.Latitude, Lon: m.Longitude, Alt: m.Altitude, Fix: fixQuality(m.Status.Status), Received: at.UTC()}
	if m.PositionCovarianceType != sensor_msgs.NavSatFix_COVARIANCE_TYPE_UNKNOWN {
		out.AccuracyM = round(math.Sqrt((m.PositionCovariance[0]+m.PositionCovariance[4])/2), 3)
	}
	return out
}

func latestFix(ctx context.Context, _ none) (FixOut, error) {
	if err := link.ready(ctx); err != nil {
		return FixOut{}, err
	}
	link.mu.Lock()
	defer link.mu.Unlock()
	if link.fix == nil {
		return FixOut{}, sdk.Errorf(wire.CodeNotFound, "ros.fix: no message on %s yet", link.set.fix)
	}
	return fixOut(link.fix, link.fixAt), nil
}

// Pose is the reading of the sensor "pose", in plugins/simbot's shape:
// fields this robot does not report are absent. Time is the newest
// message's arrival.
type Pose struct {
	Lat        *float64  `json:"lat,omitempty"`
	Lon        *float64  `json:"lon,omitempty"`
	HeadingDeg *float64  `json:"heading_deg,omitempty"`
	SpeedMPS   *float64  `json:"speed_mps,omitempty"`
	Fix        string    `json:"fix"`
	AccuracyM  float64   `json:"accuracy_m,omitempty"`
	Mode       string    `json:"mode"`
	Time       time.Time `json:"time,omitzero"`
}

func pose(ctx context.Context) (Pose, error) {
	if err := link.ready(ctx); err != nil {
		return Pose{}, err
	}
	link.mu.Lock()
	defer link.mu.Unlock()
	p := Pose{Fix: "none", Mode: "idle"}
	if link.moving {
		p.Mode = "velocity"
	}
	if link.odom != nil {
		o := odomOut(link.odom, link.odomAt)
		p.HeadingDeg, p.SpeedMPS, p.Time = &o.HeadingDeg, &o.Linear, o.Received
	}
	if link.fix != nil {
		f := fixOut(link.fix, link.fixAt)
		p.Fix, p.AccuracyM = f.Fix, f.AccuracyM
		if f.Fix != "none" {
			p.Lat, p.Lon = &f.Lat, &f.Lon
		}
		if f.Received.After(p.Time) {
			p.Time = f.Received
		}
	}
	return p, nil
}

func round(v float64, digits int) float64 {
	f := math.Pow(10, float64(digits))
	return math.Round(v*f) / f
}
