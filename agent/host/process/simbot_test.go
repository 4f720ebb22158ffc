package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

// The simbot watchdog tests run plugins/simbot as a real process under a
// real host (this package's transport) in an "agent" process — this test
// binary re-executed — then freeze or kill that agent and watch the robot
// through the NMEA it serves on 127.0.0.1, an observer that does not depend
// on the agent.

const envSimbotAgent = "DEPAI_SIMBOT_AGENT" // path of the simbot binary

var (
	simbotOnce sync.Once
	simbotPath string
	simbotErr  error
)

func simbotPlugin(t *testing.T) string {
	t.Helper()
	simbotOnce.Do(func() {
		simbotPath = filepath.Join(filepath.Dir(chaosPlugin), "simbot")
		out, err := exec.Command("go", "build", "-o", simbotPath, "github.com/depai/depai/plugins/simbot").CombinedOutput()
		if err != nil {
			simbotErr = fmt.Errorf("build simbot: %v\n%s", err, out)
		}
	})
	if simbotErr != nil {
		t.Fatal(simbotErr)
	}
	return simbotPath
}

// Simbot's parameters in these tests.
const (
	simWatchdog = 300 * time.Millisecond // simbot.Watchdog
	simSpeed    = 1.0                    // m/s
	simDecel    = 4.0                    // m/s²
	simDecelDur = time.Duration(simSpeed / simDecel * float64(time.Second))
)

var simbotKeys = []string{
	"start_lat", "start_lon", "start_heading_deg", "time_scale",
	"max_speed_mps", "max_accel_mps2", "max_decel_mps2", "max_yaw_rate_dps",
	"battery_pct", "drain_pct_per_km", "idle_drain_pct_per_h",
	"fix", "seed", "zones", "nmea_addr", "nmea_interval",
}

// runSimbotAgent is the agent process of the watchdog tests (TestMain runs
// it): it loads simbot, drives it at 1 m/s, prints the NMEA address and
// waits to be frozen or killed.
func runSimbotAgent(path string) int {
	h := host.New(host.Config{Transports: map[string]host.Transport{host.KindProcess: New(Config{StartTimeout: 20 * time.Second})}})
	p, err := h.Load(context.Background(), host.PluginSpec{
		Name: "robot-1", Kind: host.KindProcess, Path: path,
		// It serves NMEA on an ephemeral port: granted, as the launcher's
		// Landlock rules allow no other listening.
		Grants: wire.Capabilities{Actuator: true, Config: simbotKeys, Listen: []uint16{0}},
		Config: map[string]string{
			"nmea_addr": "127.0.0.1:0", "nmea_interval": "10ms", "max_speed_mps": "1",
			"max_accel_mps2": "4", "max_decel_mps2": strconv.FormatFloat(simDecel, 'f', -1, 64),
		},
	})
	if err != nil {
		fmt.Println("load:", err)
		return 1
	}
	call := func(name, args string) (json.RawMessage, error) {
		if tl, ok := p.Tool(name); ok { // by its declared name (host.ToolName)
			return tl.Call(context.Background(), json.RawMessage(args))
		}
		return nil, fmt.Errorf("no tool %s", name)
	}
	out, err := call("sim.info", "{}")
	var info struct {
		NMEAAddr string `json:"nmea_addr"`
	}
	if err == nil {
		err = json.Unmarshal(out, &info)
	}
	if err == nil {
		_, err = call("drive.velocity", `{"linear":1,"angular":0,"duration":60}`)
	}
	if err != nil {
		fmt.Println("drive:", err)
		return 1
	}
	fmt.Printf("nmea %s\n", info.NMEAAddr)
	time.Sleep(2 * time.Minute) // until the test freezes and kills it
	return 0
}

// speedAt is a speed over ground (m/s) and when it arrived.
type speedAt struct {
	at time.Time
	v  float64
}

// rmcSpeeds reads the robot's speed from the RMC sentences at addr; the
// channel closes when the robot's process closes the connection.
func rmcSpeeds(t *testing.T, addr string) <-chan speedAt {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan speedAt, 4096)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			f := strings.Split(sc.Text(), ",")
			if len(f) < 8 || f[0] != "$GPRMC" {
				continue
			}
			kn, err := strconv.ParseFloat(f[7], 64)
			if err != nil {
				continue
			}
			ch <- speedAt{at: time.Now(), v: kn * 0.514444}
		}
	}()
	return ch
}

// startDriving starts the agent process, which drives simbot at 1 m/s, and
// waits for the robot to be at speed.
func startDriving(t *testing.T) (*exec.Cmd, <-chan speedAt, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSimbotAgent+"="+simbotPlugin(t), "TMPDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	var addr string
	if _, serr := fmt.Sscanf(line, "nmea %s", &addr); err != nil || serr != nil {
		t.Fatalf("agent said %q (%v); stderr:\n%s", line, err, stderr.String())
	}
	speeds := rmcSpeeds(t, addr)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s, ok := <-speeds:
			if !ok {
				t.Fatal("NMEA ended before the robot was at speed")
			}
			if s.v >= simSpeed-0.001 {
				return cmd, speeds, &stderr
			}
		case <-deadline:
			t.Fatal("robot not at 1 m/s within 10 s")
		}
	}
}

// stopTimes reads speeds until rest: when the speed first fell (the stop
// took effect) and when it reached 0, both after since.
func stopTimes(t *testing.T, speeds <-chan speedAt, since time.Time) (falling, rest time.Duration) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s, ok := <-speeds:
			if !ok {
				t.Fatalf("NMEA ended before the robot was at rest (falling after %v)", falling)
			}
			if s.at.Before(since) {
				continue
			}
			if falling == 0 && s.v < simSpeed-0.001 {
				falling = s.at.Sub(since)
			}
			if s.v == 0 {
				return falling, s.at.Sub(since)
			}
		case <-deadline:
			t.Fatal("robot not at rest within 10 s")
		}
	}
}

func waitEnd(t *testing.T, speeds <-chan speedAt) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-speeds:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the robot's process still serves NMEA 10 s after its agent died")
		}
	}
}

// TestSimbotWatchdogStopsFrozenAgent: the agent freezes (SIGSTOP: alive,
// connected, silent — like a hung agent or a cut link); simbot's watchdog
// stops the robot within its timeout, and it is at rest within the timeout
// plus its deceleration time, plus 50 ms.
func TestSimbotWatchdogStopsFrozenAgent(t *testing.T) {
	cmd, speeds, stderr := startDriving(t)
	frozen := time.Now()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	falling, rest := stopTimes(t, speeds, frozen)
	t.Logf("agent frozen: stop took effect after %v, at rest after %v (watchdog %v, deceleration %v)", falling, rest, simWatchdog, simDecelDur)
	if falling > simWatchdog+50*time.Millisecond {
		t.Errorf("the watchdog stopped the robot %v after the agent froze, want within %v + 50ms", falling, simWatchdog)
	}
	if rest > simWatchdog+simDecelDur+50*time.Millisecond {
		t.Errorf("at rest %v after the agent froze, want within %v + %v + 50ms", rest, simWatchdog, simDecelDur)
	}
	// Killing the frozen agent ends the robot's process too.
	_ = cmd.Process.Kill()
	waitEnd(t, speeds)
	if t.Failed() {
		t.Logf("agent stderr:\n%s", stderr)
	}
}

// TestSimbotStopsWhenAgentIsKilled: kill -9 of the agent; simbot learns it
// at once (parent-death signal, closed call socket), stops, is at rest
// within its deceleration time plus 50 ms, and then exits.
func TestSimbotStopsWhenAgentIsKilled(t *testing.T) {
	cmd, speeds, stderr := startDriving(t)
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	falling, rest := stopTimes(t, speeds, killed)
	t.Logf("agent killed: stop took effect after %v, at rest after %v (deceleration %v)", falling, rest, simDecelDur)
	if rest > simDecelDur+50*time.Millisecond {
		t.Errorf("at rest %v after the agent was killed, want within %v + 50ms (and well within the watchdog's %v + %v)", rest, simDecelDur, simWatchdog, simDecelDur)
	}
	waitEnd(t, speeds)
	if t.Failed() {
		t.Logf("agent stderr:\n%s", stderr)
	}
}
