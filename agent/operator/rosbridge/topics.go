package rosbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/policy"
)

// Message types, as ROS 1 names them (ROS 2's pkg/msg/Type is read too).
const (
	typeRobotState = "depai_msgs/RobotState"
	typeNavSatFix  = "sensor_msgs/NavSatFix"
	typeTwist      = "geometry_msgs/Twist"
	typeTrigger    = "std_srvs/Trigger"
	typeReading    = "depai_msgs/Reading"
)

// Readings is implemented by agents that stream their sensor readings
// (*agent.Agent does): their /ROBOT/readings topic exists.
type Readings interface {
	Readings(ctx context.Context) iter.Seq2[agent.Reading, error]
}

// Topic suffixes under /ROBOT.
const (
	topicPose     = "pose"
	topicFix      = "fix"
	topicCmdVel   = "cmd_vel"
	topicReadings = "readings"
)

// Fleet-wide services.
const (
	serviceEStop    = "/depai/estop"
	serviceTopics   = "/rosapi/topics"
	serviceServices = "/rosapi/services"
)

// normType reads pkg/msg/Type (ROS 2) as pkg/Type.
func normType(t string) string { return strings.Replace(t, "/msg/", "/", 1) }

// split reads /ROBOT/REST.
func split(name string) (robot, rest string) {
	robot, rest, _ = strings.Cut(strings.TrimPrefix(name, "/"), "/")
	return robot, rest
}

// readTopic finds the agent and the kind of a topic a client may subscribe to.
func (c *conn) readTopic(topic, typ string) (Agent, string, error) {
	robot, rest := split(topic)
	a, ok := c.agent(robot)
	want := map[string]string{topicPose: typeRobotState, topicFix: typeNavSatFix, topicReadings: typeReading}[rest]
	if _, streams := a.(Readings); rest == topicReadings && !streams {
		want = ""
	}
	if !ok || want == "" {
		return nil, "", fmt.Errorf("unknown topic %s (topics to subscribe to: %s)", topic, strings.Join(c.topics(true), ", "))
	}
	if typ != "" && normType(typ) != want {
		return nil, "", fmt.Errorf("topic %s has type %s, not %s", topic, want, typ)
	}
	return a, rest, nil
}

// commandTopic finds the agent of a topic a client may publish to.
func (c *conn) commandTopic(topic, typ string) (Agent, string, error) {
	robot, rest := split(topic)
	a, ok := c.agent(robot)
	if !ok || rest != topicCmdVel {
		return nil, "", fmt.Errorf("unknown topic %s (topics to publish to: %s)", topic, strings.Join(c.topics(false), ", "))
	}
	if typ != "" && normType(typ) != typeTwist {
		return nil, "", fmt.Errorf("topic %s has type %s, not %s", topic, typeTwist, typ)
	}
	return a, rest, nil
}

// topics lists the topics to read (or to command), sorted.
func (c *conn) topics(read bool) []string {
	var out []string
	for _, a := range c.cfg.Agents {
		if read {
			out = append(out, "/"+a.Name()+"/"+topicPose, "/"+a.Name()+"/"+topicFix)
			if _, ok := a.(Readings); ok {
				out = append(out, "/"+a.Name()+"/"+topicReadings)
			}
		} else {
			out = append(out, "/"+a.Name()+"/"+topicCmdVel)
		}
	}
	slices.Sort(out)
	return out
}

func (c *conn) subscribe(m message) {
	a, kind, err := c.readTopic(m.Topic, m.Type)
	if err == nil && m.Compression != "" && m.Compression != "none" {
		err = fmt.Errorf("compression %q is not supported (only none)", m.Compression)
	}
	if err != nil {
		c.status(levelError, m.ID, "subscribe: "+err.Error())
		return
	}
	every := max(c.cfg.SampleInterval, time.Duration(m.ThrottleRate)*time.Millisecond)
	c.mu.Lock()
	if old, ok := c.subs[m.Topic]; ok {
		old() // a new subscribe of the same topic sets its rate anew
	} else if len(c.subs) >= MaxSubscriptions {
		c.mu.Unlock()
		c.status(levelError, m.ID, fmt.Sprintf("subscribe %s: at most %d subscriptions per connection", m.Topic, MaxSubscriptions))
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.subs[m.Topic] = cancel
	c.mu.Unlock()
	if kind == topicReadings {
		c.goWork(func() { c.stream(ctx, a.(Readings), m.Topic, time.Duration(m.ThrottleRate)*time.Millisecond) })
		return
	}
	c.goWork(func() { c.sample(ctx, a, kind, m.Topic, every) })
}

// stream publishes each reading as it is stored; with a throttle, a reading
// closer than that to the last one sent is left out.
func (c *conn) stream(ctx context.Context, a Readings, topic string, throttle time.Duration) {
	var last time.Time
	for r, err := range a.Readings(ctx) {
		if err != nil {
			c.status(levelError, "", fmt.Sprintf("%s: the readings stream failed: %v", topic, err))
			return
		}
		if now := time.Now(); throttle == 0 || now.Sub(last) >= throttle {
			last = now
			c.send(publishMsg{Op: opPublish, Topic: topic, Msg: r})
		}
	}
}

func (c *conn) unsubscribe(m message) {
	c.mu.Lock()
	cancel, ok := c.subs[m.Topic]
	delete(c.subs, m.Topic)
	c.mu.Unlock()
	if !ok {
		c.status(levelWarning, m.ID, "unsubscribe: not subscribed to "+m.Topic)
		return
	}
	cancel()
}

// sample publishes the robot's pose every interval while it has one and it
// changed. A robot without a pose yet publishes nothing.
func (c *conn) sample(ctx context.Context, a Agent, kind, topic string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last []byte
	for {
		if r := a.Status().Robot; r != nil && !r.Time.IsZero() {
			var msg any = r
			if kind == topicFix {
				msg = navSatFix(r)
			}
			data, err := json.Marshal(msg)
			if err == nil && !bytes.Equal(data, last) {
				last = data
				c.send(publishMsg{Op: opPublish, Topic: topic, Msg: json.RawMessage(data)})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// navSatFix is a pose as sensor_msgs/NavSatFix.
func navSatFix(r *agent.RobotState) map[string]any {
	status := -1 // STATUS_NO_FIX
	switch r.Fix {
	case policy.Fix2D, policy.Fix3D:
		status = 0 // STATUS_FIX
	case policy.FixDGPS:
		status = 1 // STATUS_SBAS_FIX
	case policy.FixRTKFloat, policy.FixRTKFixed:
		status = 2 // STATUS_GBAS_FIX
	}
	return map[string]any{
		"header":                   map[string]any{"stamp": map[string]int64{"secs": r.Time.Unix(), "nsecs": int64(r.Time.Nanosecond())}, "frame_id": "gps"},
		"status":                   map[string]int{"status": status, "service": 1}, // SERVICE_GPS
		"latitude":                 r.Lat,
		"longitude":                r.Lon,
		"altitude":                 0.0, // unknown: poses carry no altitude
		"position_covariance":      [9]float64{},
		"position_covariance_type": 0, // COVARIANCE_TYPE_UNKNOWN
	}
}

// twist is the part of geometry_msgs/Twist a ground robot takes.
type twist struct {
	Linear  vector3 `json:"linear"`
	Angular vector3 `json:"angular"`
}

type vector3 struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	Z float64 `json:"z"`
}

// velocityTools are the tools a cmd_vel maps to, in order of preference:
// what each takes, and the tool that stops the robot.
var velocityTools = []struct {
	name, stop string
	// clockwise: the tool's positive angular rate turns clockwise, ROS's
	// (REP 103) counter-clockwise.
	clockwise bool
}{
	{name: "drive.velocity", stop: "robot.stop", clockwise: true}, // plugins/simbot
	{name: "ros.cmd_vel", stop: "ros.stop"},                       // plugins/ros
}

// drive is one cmd_vel topic's worker: the newest command waits in next
// while the previous one is being decided and run.
type drive struct {
	next    *message
	running bool
}

// publish runs a cmd_vel on its topic's worker, the newest command winning.
func (c *conn) publish(m message) {
	a, _, err := c.commandTopic(m.Topic, m.Type)
	if err != nil {
		c.status(levelError, m.ID, "publish: "+err.Error())
		return
	}
	c.mu.Lock()
	d := c.drives[m.Topic]
	if d == nil {
		d = &drive{}
		c.drives[m.Topic] = d
	}
	d.next = &m
	if d.running {
		c.mu.Unlock()
		return
	}
	d.running = true
	c.mu.Unlock()
	c.goWork(func() {
		for {
			c.mu.Lock()
			next := d.next
			d.next = nil
			if next == nil || c.ctx.Err() != nil {
				d.running = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			if err := c.drive(a, *next); err != nil {
				c.status(levelError, next.ID, fmt.Sprintf("publish %s refused: %v", next.Topic, err))
			}
		}
	})
}

// drive turns one Twist into the robot's velocity tool call (or its stop
// tool, for a zero Twist: stopping passes every lock).
func (c *conn) drive(a Agent, m message) error {
	var tw twist
	dec := json.NewDecoder(bytes.NewReader(m.Msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tw); err != nil {
		return fmt.Errorf("msg is not a %s: %v (expected {\"linear\":{\"x\":…},\"angular\":{\"z\":…}})", typeTwist, err)
	}
	if tw.Linear.Y != 0 || tw.Linear.Z != 0 || tw.Angular.X != 0 || tw.Angular.Y != 0 {
		return fmt.Errorf("a ground robot takes linear.x and angular.z only; got linear %+v angular %+v", tw.Linear, tw.Angular)
	}
	tools, err := c.toolNames(a)
	if err != nil {
		return err
	}
	for _, v := range velocityTools {
		if !slices.Contains(tools, v.name) {
			continue
		}
		if tw.Linear.X == 0 && tw.Angular.Z == 0 && slices.Contains(tools, v.stop) {
			_, _, err := c.command(c.ctx, a, "/call "+v.stop+" {}")
			return err
		}
		angular := tw.Angular.Z
		if v.clockwise {
			angular = -angular
		}
		args, _ := json.Marshal(map[string]float64{"linear": tw.Linear.X, "angular": angular, "duration": c.cfg.Hold.Seconds()})
		_, _, err := c.command(c.ctx, a, "/call "+v.name+" "+string(args))
		return err
	}
	return fmt.Errorf("%s has no velocity tool (one of %s)", a.Name(), velocityNames())
}

func velocityNames() string {
	names := make([]string, len(velocityTools))
	for i, v := range velocityTools {
		names[i] = v.name
	}
	return strings.Join(names, ", ")
}

// toolNames lists an agent's tools through /tools, as the operator.
func (c *conn) toolNames(a Agent) ([]string, error) {
	data, _, err := c.command(c.ctx, a, "/tools")
	if err != nil {
		return nil, err
	}
	var r agent.ToolsReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading %s's tools: %w", a.Name(), err)
	}
	names := make([]string, len(r.Tools))
	for i, t := range r.Tools {
		names[i] = t.Name
	}
	return names, nil
}

// callService runs a service call in the background (a call that needs an
// operator's approval waits for it), at most MaxCalls at once.
func (c *conn) callService(m message) {
	select {
	case c.calls <- struct{}{}:
	default:
		c.respond(m, fmt.Sprintf("at most %d service calls in flight per connection", MaxCalls), false)
		return
	}
	c.goWork(func() {
		defer func() { <-c.calls }()
		values, err := c.service(m)
		if err != nil {
			c.respond(m, err.Error(), false)
			return
		}
		c.respond(m, values, true)
	})
}

func (c *conn) respond(m message, values any, ok bool) {
	c.send(serviceResponseMsg{Op: opServiceResponse, ID: m.ID, Service: m.Service, Values: values, Result: ok})
}

// service answers one call: a fleet-wide service, or a robot's tool.
func (c *conn) service(m message) (any, error) {
	switch m.Service {
	case serviceEStop:
		if m.Type != "" && normType(m.Type) != typeTrigger {
			return nil, fmt.Errorf("%s is a %s service, not %s", serviceEStop, typeTrigger, m.Type)
		}
		_, text, err := c.command(c.ctx, c.cfg.Agents[0], "/stop")
		if err != nil {
			return nil, err
		}
		return map[string]any{"success": true, "message": text}, nil
	case serviceTopics:
		read, write := c.topics(true), c.topics(false)
		topics := append(read, write...)
		types := make([]string, len(topics))
		for i, t := range topics {
			switch {
			case strings.HasSuffix(t, "/"+topicPose):
				types[i] = typeRobotState
			case strings.HasSuffix(t, "/"+topicFix):
				types[i] = typeNavSatFix
			case strings.HasSuffix(t, "/"+topicReadings):
				types[i] = typeReading
			default:
				types[i] = typeTwist
			}
		}
		return map[string][]string{"topics": topics, "types": types}, nil
	case serviceServices:
		out := []string{serviceEStop, serviceServices, serviceTopics}
		for _, a := range c.cfg.Agents {
			names, err := c.toolNames(a)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				out = append(out, "/"+a.Name()+"/"+n)
			}
		}
		slices.Sort(out)
		return map[string][]string{"services": out}, nil
	}
	robot, name := split(m.Service)
	a, ok := c.agent(robot)
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("unknown service %s (services: /ROBOT/TOOL for a robot's tools, %s; %s lists them)", m.Service, serviceEStop, serviceServices)
	}
	args := []byte("{}")
	if isObject(m.Args) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, m.Args); err != nil {
			return nil, fmt.Errorf("args: %w", err)
		}
		args = buf.Bytes()
	}
	data, _, err := c.command(c.ctx, a, "/call "+name+" "+string(args))
	if err != nil {
		var te *agent.TurnError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s", te.Code, te.Message)
		}
		return nil, err
	}
	if len(data) == 0 {
		return map[string]any{}, nil
	}
	return data, nil
}
