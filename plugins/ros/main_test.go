package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

// envNetns marks the test binary re-executed inside its own network
// namespace, where roscore (which binds every interface) can only be
// reached over loopback.
const envNetns = "DEPAI_ROS_NETNS"

// reset forgets the plugin process's node, as a fresh process would.
func reset() {
	link.mu.Lock()
	n := link.n
	link.n, link.pub, link.odom, link.fix, link.cancel, link.moving = nil, nil, nil, nil, nil, false
	link.tried, link.err = nil, nil
	link.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}

// TestROS runs the plugin against a real roscore, with rostopic and a rospy
// service node as its counterparts, all inside a network namespace with
// only loopback up.
func TestROS(t *testing.T) {
	if os.Getenv(envNetns) == "" {
		for _, tool := range []string{"roscore", "rostopic", "rosnode", "unshare", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s is not installed (scripts/test installs ros-core and its tools): %v", tool, err)
			}
		}
		flags := "-n"
		if os.Getuid() != 0 {
			flags = "-rn" // a user namespace makes the network namespace allowed
		}
		cmd := exec.Command("unshare", flags, "sh", "-c", `ip link set lo up && exec "$0" -test.run '^TestROS$' -test.v`, os.Args[0])
		home := t.TempDir()
		cmd.Env = append(os.Environ(), envNetns+"=1", "ROS_MASTER_URI=http://127.0.0.1:11311", "ROS_IP=127.0.0.1",
			"ROS_HOME="+home, "ROS_LOG_DIR="+home+"/log")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestROS") {
			t.Fatalf("inside the network namespace: %v\n%s", err, out)
		}
		t.Logf("inside the network namespace:\n%s", grepLines(string(out), "    "))
		return
	}
	// The plugin loads before the master is up: its run hook keeps trying,
	// and joins once roscore is there, with no call to make it.
	reset()
	t.Cleanup(reset)
	pt := plugintest.New(t, plugintest.Config(map[string]string{
		"master": "http://127.0.0.1:11311/", "node_host": "127.0.0.1", "node_name": "depai_test",
		"max_linear": "1", "services": "/dock:trigger,/brake:set_bool",
	}))
	if _, err := pt.Call("ros.stop", none{}); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("ros.stop before the master is up: %v, want unavailable", err)
	}
	startBG(t, "roscore", "-p", "11311")
	waitMaster(t)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := exec.Command("rosnode", "list").Output()
		if strings.Contains(string(out), "/depai_test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's node did not join the master by itself within 30 s; rosnode list:\n%s", out)
		}
	}
	t.Run("cmd_vel", func(t *testing.T) { testCmdVel(t, pt) })
	t.Run("readings", func(t *testing.T) { testReadings(t, pt) })
	t.Run("services", func(t *testing.T) { testServices(t, pt) })
}

func grepLines(s, prefix string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// startBG starts a counterpart in its own process group, stopped with it
// by its PID when the test ends. Its stdout is returned.
func startBG(t *testing.T, name string, args ...string) io.Reader {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		// roscore runs rosmaster and rosout as children: end the group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return out
}

func waitMaster(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", "127.0.0.1:11311"); err == nil {
			c.Close()
			if exec.Command("rostopic", "list").Run() == nil {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("roscore not up within 60 s")
}

// twists reads `rostopic echo -p` CSV rows: linear.x and angular.z.
type twist struct {
	at       time.Time
	lin, ang float64
}

func echoTwists(t *testing.T, topic string) <-chan twist {
	out := startBG(t, "rostopic", "echo", "-p", topic)
	ch := make(chan twist, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Split(sc.Text(), ",")
			if len(f) != 7 || strings.HasPrefix(f[0], "%") {
				continue
			}
			lin, err1 := strconv.ParseFloat(f[1], 64)
			ang, err2 := strconv.ParseFloat(f[6], 64)
			if err1 == nil && err2 == nil {
				ch <- twist{at: time.Now(), lin: lin, ang: ang}
			}
		}
	}()
	return ch
}

func waitTwist(t *testing.T, ch <-chan twist, ok func(twist) bool, what string) twist {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case tw, open := <-ch:
			if !open {
				t.Fatalf("rostopic echo ended before %s", what)
			}
			if ok(tw) {
				return tw
			}
		case <-deadline:
			t.Fatalf("no %s on /cmd_vel within 20 s", what)
		}
	}
}

func testCmdVel(t *testing.T, pt *plugintest.Plugin) {
	if _, err := pt.Call("ros.stop", none{}); err != nil { // starts the node
		t.Fatal(err)
	}
	twists := echoTwists(t, "/cmd_vel")
	// Republished at 10 Hz for 20 s: the echo catches it once subscribed.
	out, err := plugintest.CallAs[Published](pt, "ros.cmd_vel", CmdVel{Linear: 0.5, Angular: 0.2, Duration: 20})
	if err != nil || out.Topic != "/cmd_vel" {
		t.Fatalf("ros.cmd_vel = %+v, %v", out, err)
	}
	waitTwist(t, twists, func(tw twist) bool { return tw.lin == 0.5 && tw.ang == 0.2 }, "the commanded Twist")
	// The agent's stop reaches the stop handler, which publishes zero.
	stopped := time.Now()
	res := pt.StopAll(context.Background())
	if len(res) != 1 || !res[0].Acked {
		t.Fatalf("StopAll = %+v", res)
	}
	tw := waitTwist(t, twists, func(tw twist) bool { return tw.at.After(stopped) && tw.lin == 0 && tw.ang == 0 }, "a zero Twist after the stop")
	t.Logf("stop → zero Twist at rostopic echo: %v", tw.at.Sub(stopped))
	// Nothing but zeros follows: the 20 s command is over.
	time.Sleep(300 * time.Millisecond)
	for {
		select {
		case tw := <-twists:
			if tw.lin != 0 && tw.at.After(stopped.Add(50*time.Millisecond)) {
				t.Fatalf("Twist %+v after the stop", tw)
			}
			continue
		default:
		}
		break
	}
	_, err = pt.Call("ros.cmd_vel", CmdVel{Linear: 5, Duration: 1})
	if !isCode(err, wire.CodeInvalidArgument) || !strings.Contains(err.Error(), "linear 5: want from -1 to 1") {
		t.Errorf("ros.cmd_vel linear 5: %v, want refused over max_linear", err)
	}
}

func testReadings(t *testing.T, pt *plugintest.Plugin) {
	// Yaw 90° counter-clockwise from east: facing north.
	startBG(t, "rostopic", "pub", "-r", "10", "/odom", "nav_msgs/Odometry",
		`{header: {frame_id: odom}, pose: {pose: {position: {x: 1.5, y: -2.0}, orientation: {z: 0.7071068, w: 0.7071068}}}, twist: {twist: {linear: {x: 0.3}, angular: {z: 0.1}}}}`)
	startBG(t, "rostopic", "pub", "-r", "10", "/fix", "sensor_msgs/NavSatFix",
		`{status: {status: 2, service: 1}, latitude: 52.52, longitude: 13.405, altitude: 34.0, position_covariance: [0.0004, 0, 0, 0, 0.0004, 0, 0, 0, 0.01], position_covariance_type: 2}`)
	deadline := time.Now().Add(30 * time.Second)
	var odom OdomOut
	var fix FixOut
	var err error
	for {
		odom, err = plugintest.CallAs[OdomOut](pt, "ros.odom", none{})
		if err == nil {
			if fix, err = plugintest.CallAs[FixOut](pt, "ros.fix", none{}); err == nil {
				break
			}
		}
		if !isCode(err, wire.CodeNotFound) || time.Now().After(deadline) {
			t.Fatalf("readings: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if odom.X != 1.5 || odom.Y != -2 || odom.YawDeg != 90 || odom.HeadingDeg != 0 || odom.Linear != 0.3 || odom.Angular != 0.1 || odom.Frame != "odom" {
		t.Errorf("ros.odom = %+v", odom)
	}
	if fix.Lat != 52.52 || fix.Lon != 13.405 || fix.Fix != "rtk_float" || fix.AccuracyM != 0.02 {
		t.Errorf("ros.fix = %+v, want 52.52, 13.405, rtk_float, 0.02 m", fix)
	}
	raw, err := pt.Poll("pose")
	if err != nil {
		t.Fatal(err)
	}
	got := string(raw)
	for _, want := range []string{`"lat":52.52`, `"lon":13.405`, `"heading_deg":0`, `"speed_mps":0.3`, `"fix":"rtk_float"`, `"mode":"idle"`, `"time":"`} {
		if !strings.Contains(got, want) {
			t.Errorf("pose reading %s lacks %s", got, want)
		}
	}
}

func testServices(t *testing.T, pt *plugintest.Plugin) {
	out := startBG(t, "/usr/bin/python3", "testdata/services.py")
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("services.py said %q", line)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("services.py not ready within 60 s")
	}
	res, err := plugintest.CallAs[CallResult](pt, "ros.call", Call{Service: "/dock"})
	if err != nil || !res.Success || res.Message != "docking" {
		t.Errorf("ros.call /dock = %+v, %v", res, err)
	}
	res, err = plugintest.CallAs[CallResult](pt, "ros.call", Call{Service: "/brake", Data: true})
	if err != nil || !res.Success || res.Message != "brake=True" {
		t.Errorf("ros.call /brake true = %+v, %v", res, err)
	}
	if _, err := pt.Call("ros.call", Call{Service: "/self_destruct"}); !isCode(err, wire.CodeDenied) {
		t.Errorf("ros.call of a service not allowed: %v, want denied", err)
	}
}

// TestMasterUnreachable: without a master every call says so, retryably.
func TestMasterUnreachable(t *testing.T) {
	if os.Getenv(envNetns) != "" {
		t.Skip("runs outside the namespace")
	}
	reset()
	t.Cleanup(reset)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	pt := plugintest.New(t, plugintest.Config(map[string]string{"master": addr}))
	_, err = pt.Call("ros.cmd_vel", CmdVel{Linear: 0.1, Duration: 1})
	we, ok := errors.AsType[*wire.Error](err)
	if !ok || we.Code != wire.CodeUnavailable || !we.Retryable || !strings.Contains(we.Message, addr) {
		t.Fatalf("ros.cmd_vel without a master: %v, want unavailable (retryable) naming %s", err, addr)
	}
}

func TestBadConfig(t *testing.T) {
	for key, val := range map[string]string{
		"master":   "nowhere",
		"cmd_vel":  "cmd_vel",
		"rate_hz":  "0",
		"services": "/dock:teleport",
	} {
		s := defaults()
		if err := s.apply(key, val); err == nil {
			t.Errorf("%s %q accepted", key, val)
		}
	}
	s := defaults()
	if err := s.apply("services", "/dock:trigger, /brake:set_bool"); err != nil || len(s.services) != 2 || s.services["/brake"] != "set_bool" {
		t.Errorf("services = %v, %v", s.services, err)
	}
	if err := s.apply("master", "http://10.0.0.2:11311/"); err != nil || s.master != "10.0.0.2:11311" {
		t.Errorf("master = %q, %v", s.master, err)
	}
}

// FuzzSettings: every config value is accepted or refused, never a panic;
// accepted services are of a known type.
func FuzzSettings(f *testing.F) {
	for _, k := range configKeys {
		f.Add(k, "1")
	}
	f.Add("services", "/a:trigger,/b:set_bool,/c:empty")
	f.Add("master", "http://[::1]:11311/")
	f.Fuzz(func(t *testing.T, key, val string) {
		s := defaults()
		if err := s.apply(key, val); err != nil {
			return
		}
		for name, typ := range s.services {
			if !strings.HasPrefix(name, "/") || (typ != "trigger" && typ != "set_bool" && typ != "empty") {
				t.Fatalf("accepted service %q:%q", name, typ)
			}
		}
	})
}
