package operator_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// roslibScript puts testdata/rosbridge/client.mjs beside a link to the npm
// packages scripts/test installs (roslib, ws), so its bare imports resolve.
func roslibScript(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DEPAI_NPM_CACHE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "depai", "npm")
	}
	mods := filepath.Join(dir, "node_modules")
	for _, pkg := range []string{"roslib", "ws"} {
		if _, err := os.Stat(filepath.Join(mods, pkg, "package.json")); err != nil {
			t.Fatalf("npm %s is not installed in %s: run scripts/test, which installs it (%v)", pkg, mods, err)
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: run scripts/test")
	}
	tmp := t.TempDir()
	if err := os.Symlink(mods, filepath.Join(tmp, "node_modules")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "rosbridge", "client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, "client.mjs")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestROSBridgeWithRoslib: roslib, the standard ROS JavaScript client, reads
// the rover's pose and fix, drives it on cmd_vel, calls its tools as
// services and engages the e-stop; its drive after the stop is refused and
// its zero Twist reaches the stop tool. The motors record what arrived.
func TestROSBridgeWithRoslib(t *testing.T) {
	script := roslibScript(t)
	srv, a, m := bridgeServer(t)
	if err := a.Report(t.Context(), "gnss", "fix", json.RawMessage(`{"lat":52.5,"lon":13.4,"fix":"rtk_float","battery_pct":80}`)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", script, "ws://"+srv.Addr()+"/v1/rosbridge", "token-ann")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the roslib client failed: %v\n%s", err, out)
	}
	var got struct {
		Topics struct {
			Topics []string `json:"topics"`
			Types  []string `json:"types"`
		} `json:"topics"`
		Pose struct {
			Lat float64 `json:"lat"`
			Fix string  `json:"fix"`
		} `json:"pose"`
		Fix struct {
			Latitude float64 `json:"latitude"`
			Status   struct {
				Status int `json:"status"`
			} `json:"status"`
		} `json:"fix"`
		Clock, Unknown, EStop struct {
			OK     bool            `json:"ok"`
			Values json.RawMessage `json:"values"`
			Error  string          `json:"error"`
		}
		Refused string `json:"refused"`
	}
	if err := json.Unmarshal(lastLine(out), &got); err != nil {
		t.Fatalf("the client's output: %v\n%s", err, out)
	}
	if !slices.Contains(got.Topics.Topics, "/rover/cmd_vel") || len(got.Topics.Types) != len(got.Topics.Topics) {
		t.Errorf("getTopics = %+v", got.Topics)
	}
	if got.Pose.Lat != 52.5 || got.Pose.Fix != "rtk_float" || got.Fix.Latitude != 52.5 || got.Fix.Status.Status != 2 {
		t.Errorf("pose %+v, fix %+v", got.Pose, got.Fix)
	}
	if !got.Clock.OK || !strings.Contains(string(got.Clock.Values), `"unix"`) {
		t.Errorf("clock service = %+v", got.Clock)
	}
	if got.Unknown.OK || !strings.Contains(got.Unknown.Error, `no tool "warp.drive"`) {
		t.Errorf("unknown service = %+v", got.Unknown)
	}
	if !got.EStop.OK || !strings.Contains(string(got.EStop.Values), "EMERGENCY STOP") {
		t.Errorf("estop = %+v", got.EStop)
	}
	if !strings.Contains(got.Refused, "emergency stop") {
		t.Errorf("the drive after the e-stop: status %q", got.Refused)
	}
	deadline := time.Now().Add(5 * time.Second)
	drives, stops := m.state()
	for stops == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		drives, stops = m.state()
	}
	if len(drives) != 1 || drives[0]["linear"] != 0.4 || drives[0]["angular"] != -0.1 || stops != 1 {
		t.Errorf("the motors got drives %v and %d stops; want one drive at 0.4 m/s, -0.1 rad/s and one stop", drives, stops)
	}
}

// lastLine is the last non-empty line of out: the client's JSON, after
// anything node printed before it.
func lastLine(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return []byte(lines[len(lines)-1])
}
