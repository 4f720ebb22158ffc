package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
)

// The operators of the rosbridge tests, one per role, and a second operator
// to hold teleop.
var bridgeOps = []operator.Operator{
	{Name: "ann", Role: policy.RoleOperator, Token: "token-ann"},
	{Name: "bob", Role: policy.RoleOperator, Token: "token-bob"},
	{Name: "vic", Role: policy.RoleViewer, Token: "token-vic"},
	{Name: "root", Role: policy.RoleAdmin, Token: "token-root"},
}

const bridgeFleet = `
name: rover
role: robot
safety:
  motion: {max_pose_age: 5s}
  actuators:
    - tool: drive.velocity
`

// motors records the velocity commands and stops the bridge's calls reach:
// an in-process robot (its tools are the simbot's names and shapes).
type motors struct {
	mu     sync.Mutex
	drives []map[string]float64
	stops  int
	moved  chan struct{} // a token per drive, for the benchmark to wait on
}

func (m *motors) tools(t testing.TB) []tool.Tool {
	drive, err := tool.New("drive.velocity", "Drive.", tool.EffectActuator, func(_ context.Context, in struct {
		Linear   float64 `json:"linear"`
		Angular  float64 `json:"angular"`
		Duration float64 `json:"duration"`
	}) (map[string]bool, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.drives = append(m.drives, map[string]float64{"linear": in.Linear, "angular": in.Angular, "duration": in.Duration})
		select {
		case m.moved <- struct{}{}:
		default:
		}
		return map[string]bool{"driving": true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := tool.New("robot.stop", "Stop.", tool.EffectNone, func(context.Context, struct{}) (map[string]bool, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.stops++
		return map[string]bool{"stopped": true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The drives so far, as a service a client out of process can poll:
	// a drive runs on its topic's worker, after the publish returned.
	count, err := tool.New("motors.drives", "Drives so far.", tool.EffectNone, func(context.Context, struct{}) (map[string]int, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return map[string]int{"drives": len(m.drives)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return []tool.Tool{drive, stop, count}
}

func (m *motors) state() ([]map[string]float64, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]map[string]float64(nil), m.drives...), m.stops
}

// bridgeServer opens the rover fleet with its motors and serves it to the
// bridge operators.
func bridgeServer(t testing.TB) (*operator.Server, *agent.Agent, *motors) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(bridgeFleet))
	if err != nil {
		t.Fatal(err)
	}
	m := &motors{moved: make(chan struct{}, 1)}
	fleet, err := agent.Open(t.Context(), cfg, agent.Options{DataDir: filepath.Join(dir, "data"), Tools: map[string][]tool.Tool{"rover": m.tools(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close(context.Background()) })
	a, _ := fleet.Agent("rover")
	srv := startServerConfig(t, operator.Config{Addr: "127.0.0.1:0", Agents: []operator.Agent{a}, Operators: bridgeOps})
	return srv, a, m
}

// bridgeClient is a rosbridge client on a real WebSocket.
type bridgeClient struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialBridge(t testing.TB, srv *operator.Server, token string) *bridgeClient {
	t.Helper()
	ws, resp, err := websocket.Dial(t.Context(), "ws://"+srv.Addr()+"/v1/rosbridge", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &bridgeClient{t: t, ws: ws}
}

func (c *bridgeClient) send(msg string) {
	c.t.Helper()
	if err := c.ws.Write(c.t.Context(), websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write %s: %v", msg, err)
	}
}

// await reads messages until one matches, or fails after a few seconds.
func (c *bridgeClient) await(what string, match func(m map[string]any) bool) map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Fatalf("the bridge sent no JSON object: %s", data)
		}
		if match(m) {
			return m
		}
	}
}

// status awaits a status message containing want.
func (c *bridgeClient) status(want string) string {
	c.t.Helper()
	m := c.await("a status with "+want, func(m map[string]any) bool {
		msg, _ := m["msg"].(string)
		return m["op"] == "status" && strings.Contains(msg, want)
	})
	return m["msg"].(string)
}

// response awaits the service response of id.
func (c *bridgeClient) response(id string) map[string]any {
	c.t.Helper()
	return c.await("the response to "+id, func(m map[string]any) bool { return m["op"] == "service_response" && m["id"] == id })
}

func pub(id string, x, z float64) string {
	b, _ := json.Marshal(map[string]any{"op": "publish", "topic": "/rover/cmd_vel", "id": id,
		"msg": map[string]any{"linear": map[string]float64{"x": x, "y": 0, "z": 0}, "angular": map[string]float64{"x": 0, "y": 0, "z": z}}})
	return string(b)
}

// waitDrives waits until the motors got n velocity commands.
func waitDrives(t *testing.T, m *motors, n int) []map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, _ := m.state()
		if len(d) >= n || time.Now().After(deadline) {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestROSBridgeCommandsPassThePolicy: every command from a rosbridge client
// is its operator's actuator call of the named robot — driven when allowed,
// refused (and audited) under another's teleop, under the e-stop, on a
// stale pose and for a viewer; a zero Twist stops the robot even under the
// e-stop.
func TestROSBridgeCommandsPassThePolicy(t *testing.T) {
	srv, a, m := bridgeServer(t)
	ann := dialBridge(t, srv, "token-ann")

	// No pose yet: the motion rules cannot check the move, so it is refused.
	ann.send(pub("p0", 0.5, 0.2))
	ann.status("position is unknown")

	report := func() {
		if err := a.Report(t.Context(), "gnss", "fix", json.RawMessage(`{"lat":52.5,"lon":13.4,"fix":"rtk_fixed","speed_mps":0}`)); err != nil {
			t.Fatal(err)
		}
	}
	report()
	ann.send(`{"op":"subscribe","topic":"/rover/pose","type":"depai_msgs/RobotState"}`)
	pose := ann.await("a pose", func(m map[string]any) bool { return m["op"] == "publish" && m["topic"] == "/rover/pose" })
	if msg := pose["msg"].(map[string]any); msg["lat"] != 52.5 || msg["fix"] != "rtk_fixed" {
		t.Errorf("pose = %v", msg)
	}
	ann.send(`{"op":"subscribe","topic":"/rover/fix","type":"sensor_msgs/msg/NavSatFix"}`)
	fix := ann.await("a fix", func(m map[string]any) bool { return m["op"] == "publish" && m["topic"] == "/rover/fix" })
	if msg := fix["msg"].(map[string]any); msg["latitude"] != 52.5 || msg["status"].(map[string]any)["status"] != 2.0 {
		t.Errorf("fix = %v", msg)
	}
	ann.send(`{"op":"unsubscribe","topic":"/rover/pose"}`)
	ann.send(`{"op":"unsubscribe","topic":"/rover/fix"}`)

	// Allowed: the Twist becomes the simbot's drive.velocity (clockwise
	// positive, so angular.z is negated) for the bridge's hold time.
	ann.send(`{"op":"advertise","topic":"/rover/cmd_vel","type":"geometry_msgs/Twist"}`)
	ann.send(pub("p1", 0.5, 0.2))
	drives := waitDrives(t, m, 1)
	if len(drives) != 1 || drives[0]["linear"] != 0.5 || drives[0]["angular"] != -0.2 || drives[0]["duration"] != 0.5 {
		t.Fatalf("drives = %v, want one at linear 0.5, angular -0.2 for 0.5 s", drives)
	}

	// Someone else's teleop: refused with that reason.
	if got := reply(collectAs(t, a, "bob", "/teleop rover on")); !strings.Contains(got, "hold teleop") {
		t.Fatalf("teleop: %s", got)
	}
	ann.send(pub("p2", 0.5, 0))
	ann.status("operator bob holds teleop control of rover")
	collectAs(t, a, "bob", "/teleop rover off")

	// A viewer may read but not drive.
	vic := dialBridge(t, srv, "token-vic")
	vic.send(pub("v1", 0.5, 0))
	vic.status("forbidden")
	vic.send(`{"op":"call_service","service":"/rover/drive.velocity","id":"v2","args":{"linear":1,"angular":0,"duration":1}}`)
	if r := vic.response("v2"); r["result"] != false || !strings.Contains(r["values"].(string), "forbidden") {
		t.Errorf("viewer's service call = %v", r)
	}

	// The e-stop, engaged over the bridge itself: drives are refused, a
	// zero Twist still reaches the robot's stop tool.
	ann.send(`{"op":"call_service","service":"/depai/estop","id":"s1","type":"std_srvs/Trigger"}`)
	if r := ann.response("s1"); r["result"] != true || !strings.Contains(r["values"].(map[string]any)["message"].(string), "EMERGENCY STOP") {
		t.Fatalf("estop = %v", r)
	}
	report()
	ann.send(pub("p3", 0.5, 0))
	ann.status("emergency stop")
	ann.send(pub("p4", 0, 0))
	deadline := time.Now().Add(5 * time.Second)
	for _, stops := m.state(); stops == 0 && time.Now().Before(deadline); _, stops = m.state() {
		time.Sleep(5 * time.Millisecond)
	}
	drives, stops := m.state()
	if len(drives) != 1 || stops != 1 {
		t.Errorf("after the refusals: %d drives, %d stops; want 1 and 1", len(drives), stops)
	}
	audit := reply(collectAs(t, a, "root", "/audit 40"))
	for _, want := range []string{"teleop", "emergency stop", "vic has viewer", "ann"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, audit)
		}
	}
}

// TestROSBridgeServiceCallsATool: a robot's tool is a service; its result
// is the response's values.
func TestROSBridgeServiceCallsATool(t *testing.T) {
	srv, _, _ := bridgeServer(t)
	ann := dialBridge(t, srv, "token-ann")
	ann.send(`{"op":"call_service","service":"/rover/clock","id":7,"args":{}}`)
	if r := ann.response("7"); r["result"] != true || !strings.Contains(toJSON(r["values"]), `"unix":`) {
		t.Errorf("clock = %v", r)
	}
	ann.send(`{"op":"call_service","service":"/rosapi/services","id":"s"}`)
	if r := ann.response("s"); !strings.Contains(toJSON(r["values"]), "/rover/drive.velocity") {
		t.Errorf("services = %v", r)
	}
	ann.send(`{"op":"call_service","service":"/rosapi/topics","id":"t"}`)
	if r := ann.response("t"); !strings.Contains(toJSON(r["values"]), "/rover/cmd_vel") {
		t.Errorf("topics = %v", r)
	}
}

// TestROSBridgeBadInput: malformed and unsupported messages are answered
// with a status naming what is wrong, and the connection serves on; an
// oversize frame closes it with 1009; no token, no upgrade.
func TestROSBridgeBadInput(t *testing.T) {
	srv, _, m := bridgeServer(t)
	c := dialBridge(t, srv, "token-ann")
	for _, tt := range []struct{ msg, want string }{
		{`{"op":"publish",`, "malformed message"},
		{`[1,2]`, "one JSON object"},
		{`{"topic":"/rover/pose"}`, `without "op"`},
		{`{"op":"teleport"}`, `op "teleport" is not supported`},
		{`{"op":"subscribe","topic":"/rover/battery"}`, "unknown topic /rover/battery"},
		{`{"op":"subscribe","topic":"/nobody/pose"}`, "unknown topic /nobody/pose"},
		{`{"op":"subscribe","topic":"rover/battery"}`, "unknown topic /rover/battery"},
		{`{"op":"subscribe","topic":"/rover/po se"}`, "spaces or control characters"},
		{`{"op":"subscribe","topic":"/rover/pose","type":"std_msgs/String"}`, "has type depai_msgs/RobotState"},
		{`{"op":"subscribe","topic":"/rover/pose","compression":"cbor"}`, `compression "cbor" is not supported`},
		{`{"op":"subscribe","topic":"/rover/pose","throttle_rate":-5}`, "throttle_rate"},
		{`{"op":"publish","topic":"/rover/cmd_vel","msg":"fast"}`, `"msg" must be a JSON object`},
		{`{"op":"publish","topic":"/rover/cmd_vel","msg":{"linear":{"x":"fast"}}}`, "is not a geometry_msgs/Twist"},
		{`{"op":"publish","topic":"/rover/cmd_vel","msg":{"linear":{"x":1,"z":3}}}`, "linear.x and angular.z only"},
		{`{"op":"publish","topic":"/rover/cmd_vel","msg":{"linear":{"x":1},"warp":9}}`, "is not a geometry_msgs/Twist"},
		{`{"op":"publish","topic":"/rover/pose","msg":{}}`, "unknown topic /rover/pose (topics to publish to: /rover/cmd_vel)"},
		{`{"op":"advertise","topic":"/rover/cmd_vel","type":"std_msgs/String"}`, "has type geometry_msgs/Twist"},
		{`{"op":"fragment","id":"f","data":"{","num":0,"total":2}`, "fragmented messages are not supported"},
		{`{"op":"advertise_service","service":"/x","type":"std_srvs/Trigger"}`, "does not host clients' services"},
		{`{"op":"set_level","level":"loud"}`, `level "loud"`},
		{`{"op":"subscribe","id":{"x":1},"topic":"/rover/pose"}`, `"id" must be a string or a number`},
	} {
		c.send(tt.msg)
		c.status(tt.want)
	}
	c.send(`{"op":"call_service","service":"/depai/estop","id":"e","type":"std_srvs/SetBool"}`)
	if r := c.response("e"); r["result"] != false || !strings.Contains(r["values"].(string), "std_srvs/Trigger service") {
		t.Errorf("estop with the wrong type = %v", r)
	}
	c.send(`{"op":"call_service","service":"/rover/no.such.tool","id":"u"}`)
	if r := c.response("u"); r["result"] != false || !strings.Contains(r["values"].(string), `no tool "no.such.tool"`) {
		t.Errorf("unknown tool = %v", r)
	}
	c.send(`{"op":"call_service","service":"/rover/drive.velocity","id":"bad","args":[1]}`)
	c.status(`"args" must be a JSON object`)
	if err := c.ws.Write(t.Context(), websocket.MessageBinary, []byte{0x82}); err != nil {
		t.Fatal(err)
	}
	c.status("binary frames")
	if d, _ := m.state(); len(d) != 0 {
		t.Errorf("bad input moved the robot: %v", d)
	}

	// An oversize frame ends the connection with 1009.
	big := `{"op":"publish","topic":"/rover/cmd_vel","msg":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}`
	_ = c.ws.Write(t.Context(), websocket.MessageText, []byte(big))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, _, err = c.ws.Read(ctx)
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Errorf("after an oversize frame: %v (close status %d), want 1009", err, got)
	}

	// Without a token there is no upgrade.
	_, resp, err := websocket.Dial(t.Context(), "ws://"+srv.Addr()+"/v1/rosbridge", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial without a token: %v, %v", err, resp)
	}
	// Nor from a page of another site (cross-site WebSocket hijacking).
	_, resp, err = websocket.Dial(t.Context(), "ws://"+srv.Addr()+"/v1/rosbridge", &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Bearer token-ann"}, "Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("dial from another origin: %v, %v", err, resp)
	}
}

// collectAs runs text on a as the named bridge operator.
func collectAs(t *testing.T, a *agent.Agent, name, text string) []agent.Event {
	t.Helper()
	var role policy.Role
	for _, op := range bridgeOps {
		if op.Name == name {
			role = op.Role
		}
	}
	var evs []agent.Event
	for ev, err := range a.Handle(t.Context(), agent.Input{Source: agent.SourceOperator, From: name, Role: role, Text: text}) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatal(errors.New(text + ": no events"))
	}
	return evs
}

func reply(evs []agent.Event) string {
	ev := evs[len(evs)-1]
	return ev.Text + ev.Error
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestShutdownEndsROSBridgeConnections: a bridge connection is hijacked, so
// http.Server.Shutdown does not see it; Server.Shutdown still ends it
// (going away) and waits for it.
func TestShutdownEndsROSBridgeConnections(t *testing.T) {
	srv, a, _ := bridgeServer(t)
	if err := a.Report(t.Context(), "gnss", "fix", json.RawMessage(`{"lat":52.5,"lon":13.4,"fix":"3d"}`)); err != nil {
		t.Fatal(err)
	}
	c := dialBridge(t, srv, "token-vic")
	c.send(`{"op":"subscribe","topic":"/rover/pose"}`)
	c.await("a pose", func(m map[string]any) bool { return m["op"] == "publish" })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	ended := make(chan error, 1)
	go func() { // a client reads all the time, and so hears the close
		var err error
		for err == nil {
			_, _, err = c.ws.Read(ctx)
		}
		ended <- err
	}()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %v with a bridge open", took)
	}
	if got := websocket.CloseStatus(<-ended); got != websocket.StatusGoingAway {
		t.Errorf("the client saw close status %d, want 1001 going away", got)
	}
}

// TestROSBridgeReadings: /ROBOT/readings streams each sensor reading as
// the agent stores it.
func TestROSBridgeReadings(t *testing.T) {
	srv, a, _ := bridgeServer(t)
	c := dialBridge(t, srv, "token-vic")
	c.send(`{"op":"subscribe","topic":"/rover/readings","type":"depai_msgs/Reading"}`)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // until the subscription sees one: it starts at the newest record
		for {
			_ = a.Report(context.Background(), "bms", "battery", json.RawMessage(`{"battery_pct":77}`))
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	m := c.await("a reading", func(m map[string]any) bool { return m["op"] == "publish" && m["topic"] == "/rover/readings" })
	msg := m["msg"].(map[string]any)
	if msg["source"] != "bms" || msg["sensor"] != "battery" || msg["data"].(map[string]any)["battery_pct"] != 77.0 {
		t.Errorf("reading = %v", msg)
	}
}
