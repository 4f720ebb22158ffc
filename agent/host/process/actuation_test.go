package process

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

var (
	stopPluginOnce sync.Once
	stopPluginPath string
	stopPluginErr  error
)

// stopPlugin builds testdata/stopplugin once, beside the chaos plugin
// (TestMain removes that directory).
func stopPlugin(t testing.TB) string {
	t.Helper()
	stopPluginOnce.Do(func() {
		stopPluginPath = filepath.Join(filepath.Dir(chaosPlugin), "stopplugin")
		out, err := exec.Command("go", "build", "-o", stopPluginPath, "github.com/depai/depai/agent/host/process/testdata/stopplugin").CombinedOutput()
		if err != nil {
			stopPluginErr = fmt.Errorf("build stopplugin: %v\n%s", err, out)
		}
	})
	if stopPluginErr != nil {
		t.Fatal(stopPluginErr)
	}
	return stopPluginPath
}

// stopLog reads stops.log, where the stop plugins record each stop as
// "pid reason", starting empty.
func stopLog(t *testing.T) func() []string {
	path := filepath.Join(filepath.Dir(stopPlugin(t)), "stops.log")
	_ = os.Remove(path)
	return func() []string {
		b, _ := os.ReadFile(path)
		return strings.Fields(strings.ReplaceAll(string(b), " ", ":"))
	}
}

func waitStop(t *testing.T, log func() []string, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(log(), want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no stop %q; have %q", want, log())
}

// stopHost is a real host with the process transport and n stop plugins
// named robot-0 … robot-(n-1).
func stopHost(t testing.TB, n int, limits host.Limits) *host.Host {
	t.Helper()
	rec := newRecorder()
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindProcess: New(testConfig(rec))},
		Logger:     slog.New(rec),
	})
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	for i := range n {
		if _, err := h.Load(context.Background(), stopSpec(t, i, limits)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func stopSpec(t testing.TB, i int, limits host.Limits) host.PluginSpec {
	return host.PluginSpec{
		Name: fmt.Sprintf("robot-%d", i), Kind: host.KindProcess, Path: stopPlugin(t), Limits: limits,
		// The plugin records its stops in a file beside it: granted, as
		// the launcher's Landlock rules allow nothing else.
		Grants: wire.Capabilities{Actuator: true, Files: []wire.FileGrant{{Path: filepath.Dir(stopPlugin(t)), Mode: wire.FileRW}}},
	}
}

func toolCall(t *testing.T, h *host.Host, plugin, name string, args any) (json.RawMessage, error) {
	t.Helper()
	p, ok := h.Plugin(plugin)
	if !ok {
		t.Fatalf("plugin %s not loaded", plugin)
	}
	b := []byte("{}")
	if args != nil {
		b, _ = json.Marshal(args)
	}
	// By the declared name: a plugin loaded as robot-0 has its tools
	// qualified as robot-0.* (host.ToolName).
	if tl, ok := p.Tool(name); ok {
		return tl.Call(context.Background(), b)
	}
	t.Fatalf("%s has no tool %s", plugin, name)
	return nil, nil
}

type pluginState struct {
	PID     int
	Moving  bool
	Reasons []string
}

func stateOf(t *testing.T, h *host.Host, plugin string) pluginState {
	t.Helper()
	out, err := toolCall(t, h, plugin, "state", nil)
	if err != nil {
		t.Fatalf("%s state: %v", plugin, err)
	}
	var s pluginState
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStopAllReachesEveryActuatorPlugin: every plugin's stop handler runs
// and acknowledges, also one whose only call slot a long call holds.
func TestStopAllReachesEveryActuatorPlugin(t *testing.T) {
	h := stopHost(t, 3, host.Limits{Concurrency: 1})
	for i := range 3 {
		if _, err := toolCall(t, h, fmt.Sprintf("robot-%d", i), "move", nil); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _, _ = toolCall(t, h, "robot-1", "hold", map[string]int{"ms": 5000}) }()
	time.Sleep(100 * time.Millisecond) // let the hold take robot-1's only slot
	res := h.StopAll(context.Background())
	if len(res) != 3 {
		t.Fatalf("StopAll answered for %d plugins, want 3: %+v", len(res), res)
	}
	for _, r := range res {
		if !r.Acked || r.Quarantined || r.Err != nil {
			t.Errorf("%s: %+v, want acknowledged", r.Plugin, r)
		}
	}
	for i := range 3 {
		name := fmt.Sprintf("robot-%d", i)
		if i == 1 {
			continue // its slot is held; its state is asked below once free
		}
		if s := stateOf(t, h, name); s.Moving || !slices.Equal(s.Reasons, []string{wire.StopCommanded}) {
			t.Errorf("%s after StopAll: %+v, want stopped once for %q", name, s, wire.StopCommanded)
		}
	}
}

// TestStopAllQuarantinesPluginThatIgnoresStop: a plugin that does not
// acknowledge is reported, unloaded and refused until cleared; the others
// are stopped all the same.
func TestStopAllQuarantinesPluginThatIgnoresStop(t *testing.T) {
	h := stopHost(t, 2, host.Limits{})
	if _, err := toolCall(t, h, "robot-0", "ignore", map[string]bool{"on": true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := h.StopAll(ctx)
	if took := time.Since(start); took > 300*time.Millisecond+margin {
		t.Errorf("StopAll took %v with a 300ms deadline", took)
	}
	byName := map[string]host.StopResult{}
	for _, r := range res {
		byName[r.Plugin] = r
	}
	if r := byName["robot-0"]; r.Acked || !r.Quarantined || r.Err == nil {
		t.Errorf("robot-0 (ignores stops): %+v, want not acknowledged and quarantined", r)
	}
	if r := byName["robot-1"]; !r.Acked || r.Quarantined {
		t.Errorf("robot-1: %+v, want acknowledged", r)
	}
	if _, ok := h.Plugin("robot-0"); ok {
		t.Error("robot-0 is still loaded after it ignored a stop")
	}
	if why := h.Quarantined()["robot-0"]; !strings.Contains(why, "did not acknowledge a stop") {
		t.Errorf("Quarantined()[robot-0] = %q", why)
	}
	_, err := h.Load(context.Background(), stopSpec(t, 0, host.Limits{}))
	if err == nil || !strings.Contains(err.Error(), "quarantined") {
		t.Fatalf("Load of a quarantined plugin: %v, want refused as quarantined", err)
	}
	if ok, err := h.ClearQuarantine("robot-0"); !ok || err != nil {
		t.Fatalf("ClearQuarantine(robot-0) = %v, %v", ok, err)
	}
	if _, err := h.Load(context.Background(), stopSpec(t, 0, host.Limits{})); err != nil {
		t.Fatalf("Load after ClearQuarantine: %v", err)
	}
}

// TestUnloadCloseAndRestartStop: the host stops a plugin's actuators when
// it unloads it, when it closes, and when its process came back after a
// crash — each with its reason.
func TestUnloadCloseAndRestartStop(t *testing.T) {
	log := stopLog(t)
	rec := newRecorder()
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindProcess: New(testConfig(rec))},
		Logger:     slog.New(rec),
	})
	pids := map[string]int{}
	for i := range 3 {
		if _, err := h.Load(context.Background(), stopSpec(t, i, host.Limits{})); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("robot-%d", i)
		pids[name] = stateOf(t, h, name).PID
	}
	if err := h.Unload(context.Background(), "robot-0"); err != nil {
		t.Fatal(err)
	}
	waitStop(t, log, fmt.Sprintf("%d:%s", pids["robot-0"], wire.StopUnload))

	if _, err := toolCall(t, h, "robot-1", "crash", nil); err == nil {
		t.Fatal("crash returned no error")
	}
	rec.waitFor(t, "restarted actuator plugin stopped its actuators", "robot-1")
	s := stateOf(t, h, "robot-1")
	if s.PID == pids["robot-1"] || !slices.Equal(s.Reasons, []string{wire.StopRestart}) {
		t.Errorf("robot-1 after its crash: %+v, want a new process stopped once for %q", s, wire.StopRestart)
	}
	pids["robot-1"] = s.PID

	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := log()
	// Close stops everyone once, before unloading: no "unload" stop follows.
	for _, name := range []string{"robot-1", "robot-2"} {
		want := fmt.Sprintf("%d:%s", pids[name], wire.StopShutdown)
		if !slices.Contains(got, want) {
			t.Errorf("after Close: stops %q, want %q among them", got, want)
		}
		if twice := fmt.Sprintf("%d:%s", pids[name], wire.StopUnload); slices.Contains(got, twice) {
			t.Errorf("Close stopped %s twice: %q", name, got)
		}
	}
}

// BenchmarkStopAll measures /stop → every actuator plugin's stop handler
// called and acknowledged, for N real process plugins; p50/p99 over b.N.
func BenchmarkStopAll(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("plugins=%d", n), func(b *testing.B) {
			h := stopHost(b, n, host.Limits{})
			lat := make([]time.Duration, 0, b.N)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				res := h.StopAll(ctx)
				lat = append(lat, time.Since(start))
				for _, r := range res {
					if !r.Acked {
						b.Fatalf("%s: %+v", r.Plugin, r)
					}
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
