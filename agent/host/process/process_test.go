package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

// margin is how late past its deadline a call may return. It is generous on
// purpose: the property under test is that a hung, dead or hostile plugin
// cannot hold a call hostage, not how fast the host is.
const margin = 3 * time.Second

func testConfig(rec *recorder) Config {
	return Config{
		Logger:       slog.New(rec),
		StartTimeout: 20 * time.Second,
		HangGrace:    200 * time.Millisecond,
		MemoryLimit:  512 << 20,
		Restart:      Restart{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxCrashes: 20, Window: time.Minute},
	}
}

func load(t *testing.T, cfg Config, spec host.LoadSpec) host.Instance {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "chaos"
	}
	if spec.Path == "" {
		spec.Path = chaosPlugin
	}
	in, err := New(cfg).Load(context.Background(), spec)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return in
}

func call(t *testing.T, in host.Instance, method string, payload any) wire.Result {
	t.Helper()
	return callCtx(t, context.Background(), in, method, payload)
}

func callCtx(t *testing.T, ctx context.Context, in host.Instance, method string, payload any) wire.Result {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return in.Call(ctx, wire.Call{Method: method, Payload: b, CallID: method})
}

// pid is the plugin's process id as the host sees it (the plugin itself
// sees 1, the first process of its PID namespace), once a call succeeds.
func pid(t *testing.T, in host.Instance) int {
	t.Helper()
	res := call(t, in, "pid", nil)
	if res.Error != nil {
		t.Fatalf("pid: %v", res.Error)
	}
	return PID(in)
}

func TestLoadCallDescribe(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{})
	m := in.Manifest()
	if m.Name != "chaos" || m.Version != "0.1.0" || m.ABI != wire.ABIVersion || len(m.Tools) == 0 {
		t.Fatalf("manifest = %+v", m)
	}
	if got := m.Requests.Emit; len(got) != 1 || got[0] != "chaos" {
		t.Errorf("requests.emit = %v, want [chaos]", got)
	}
	res := call(t, in, "echo", map[string]int{"n": 42})
	if res.Error != nil || string(res.Payload) != `{"n":42}` {
		t.Fatalf("echo = %s, %v", res.Payload, res.Error)
	}
	res = call(t, in, wire.MethodDescribe, nil)
	var d wire.Manifest
	if res.Error != nil || json.Unmarshal(res.Payload, &d) != nil || d.Name != "chaos" {
		t.Fatalf("$describe = %s, %v", res.Payload, res.Error)
	}
	res = call(t, in, "nope", nil)
	if res.Error == nil || res.Error.Code != wire.CodeNotFound {
		t.Fatalf("unknown method: %+v, want not_found", res.Error)
	}
}

func TestOutputGoesToLogWithPluginName(t *testing.T) {
	rec := newRecorder()
	in := load(t, testConfig(rec), host.LoadSpec{Name: "noisy"})
	if res := call(t, in, "stderr", "hello"); res.Error != nil {
		t.Fatal(res.Error)
	}
	rec.waitFor(t, `chaos says "hello"`, "plugin=noisy", "stream=stderr")
	if res := call(t, in, "garbage", nil); res.Error == nil {
		t.Fatal("garbage: no error")
	}
	rec.waitFor(t, "garbage on stdout {{{", "plugin=noisy", "stream=stdout")
}

// TestHostCallsGoThroughThePolicyEngine loads the plugin through the
// agent's real host, whose dispatcher enforces the grants.
func TestHostCallsGoThroughThePolicyEngine(t *testing.T) {
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindProcess: New(testConfig(newRecorder()))},
		Logger:     slog.New(newRecorder()),
	})
	defer h.Close(context.Background())
	p, err := h.Load(context.Background(), host.PluginSpec{Name: "chaos", Kind: host.KindProcess, Path: chaosPlugin, Grants: wire.Capabilities{Emit: []string{"chaos"}, Clock: true}})
	if err != nil {
		t.Fatal(err)
	}
	hostTool, _ := p.Tool("host")
	if hostTool == nil {
		t.Fatal("no host tool")
	}
	hostCall := func(method string, payload any) (json.RawMessage, error) {
		b, _ := json.Marshal(map[string]any{"method": method, "payload": payload})
		return hostTool.Call(context.Background(), b)
	}
	out, err := hostCall(wire.HostClock, nil)
	var clock wire.Clock
	if err != nil || json.Unmarshal(out, &clock) != nil || clock.UnixNano == 0 {
		t.Fatalf("granted clock = %s, %v", out, err)
	}
	_, err = hostCall(wire.HostSecret, wire.KeyArgs{Key: "wallet"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeDenied {
		t.Fatalf("ungranted secret: %v; want denied", err)
	}
	_, err = hostCall(wire.HostEmit, wire.EmitArgs{Topic: "elsewhere", Payload: json.RawMessage(`{}`)})
	if !errors.As(err, &we) || we.Code != wire.CodeDenied {
		t.Fatalf("emit on an ungranted topic: %v; want denied", err)
	}
}

func TestHostCallWithoutDispatcherIsDenied(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{})
	res := call(t, in, "host", map[string]any{"method": wire.HostClock})
	if res.Error == nil || res.Error.Code != wire.CodeDenied {
		t.Fatalf("host call without a dispatcher: %+v; want denied", res.Error)
	}
}

// TestChaos is the process half of the chaos suite: each misbehaviour ends
// in a typed error within the deadline plus a margin, a bystander plugin is
// unaffected meanwhile, and the victim answers the next call (from a
// restarted process where the old one had to die).
func TestChaos(t *testing.T) {
	cases := []struct {
		name    string
		method  string
		payload any
		timeout time.Duration
		code    string
		restart bool // a new process must serve the next call
	}{
		{name: "panic in handler", method: "panic", code: wire.CodeCrashed},
		{name: "panic in goroutine", method: "panic_goroutine", code: wire.CodeCrashed, restart: true},
		{name: "exit", method: "exit", code: wire.CodeCrashed, restart: true},
		{name: "infinite loop", method: "spin", timeout: 300 * time.Millisecond, code: wire.CodeTimeout, restart: true},
		{name: "memory hog", method: "hog", code: wire.CodeCrashed, restart: true},
		{name: "slow handler", method: "sleep", payload: "10s", timeout: 300 * time.Millisecond, code: wire.CodeTimeout},
		{name: "garbage output", method: "garbage", code: wire.CodeInternal},
		{name: "oversize output", method: "big", payload: 2 << 20, code: wire.CodeTooLarge},
		{name: "oversize input", method: "echo", payload: strings.Repeat("x", 2<<20), code: wire.CodeTooLarge},
	}
	bystander := load(t, testConfig(newRecorder()), host.LoadSpec{Name: "bystander"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			victim := load(t, testConfig(newRecorder()), host.LoadSpec{Limits: host.Limits{MaxMessageBytes: 1 << 20, CallTimeout: 10 * time.Second}})
			before := pid(t, victim)

			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			var bystanderErr *wire.Error
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if res := call(t, bystander, "echo", "ok"); res.Error != nil {
						bystanderErr = res.Error
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()

			ctx := context.Background()
			budget := 10 * time.Second
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
				budget = tc.timeout
			}
			start := time.Now()
			res := callCtx(t, ctx, victim, tc.method, tc.payload)
			took := time.Since(start)
			close(stop)
			wg.Wait()

			if res.Error == nil || res.Error.Code != tc.code {
				t.Fatalf("%s = %s, %+v; want code %s", tc.method, res.Payload, res.Error, tc.code)
			}
			if took > budget+margin {
				t.Errorf("%s returned after %v; deadline %v + margin %v", tc.method, took, budget, margin)
			}
			if bystanderErr != nil {
				t.Errorf("bystander plugin failed meanwhile: %v", bystanderErr)
			}
			after := pid(t, victim) // the next call succeeds, waiting out a restart if there is one
			if tc.method == "spin" {
				// The spinning process lives on until its watchdog fires
				// HangGrace later; a call may still reach it meanwhile.
				for deadline := time.Now().Add(10 * time.Second); after == before && time.Now().Before(deadline); {
					time.Sleep(20 * time.Millisecond)
					if res := call(t, victim, "pid", nil); res.Error == nil {
						after = PID(victim)
					}
				}
			}
			if tc.restart == (after == before) {
				t.Errorf("pid before %d, after %d; restart expected: %v", before, after, tc.restart)
			}
		})
	}
}

func TestSIGKILLMidCall(t *testing.T) {
	rec := newRecorder()
	in := load(t, testConfig(rec), host.LoadSpec{})
	victim := pid(t, in)
	done := make(chan wire.Result)
	go func() { done <- call(t, in, "sleep", "30s") }()
	rec.waitFor(t, "chaos: sleeping 30s")
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.Error == nil || res.Error.Code != wire.CodeCrashed || !res.Error.Retryable || !strings.Contains(res.Error.Message, "killed") {
		t.Fatalf("in-flight call = %+v; want retryable crashed naming the signal", res.Error)
	}
	if res := call(t, in, "echo", "again"); res.Error != nil {
		t.Fatalf("call after restart: %v", res.Error)
	}
	if p := pid(t, in); p == victim {
		t.Fatalf("still pid %d after SIGKILL", p)
	}
	rec.waitFor(t, "plugin crashed; restarting", "plugin=chaos", "signal: killed")
	rec.waitFor(t, "plugin restarted")
}

func TestGivesUpAfterRepeatedCrashes(t *testing.T) {
	rec := newRecorder()
	cfg := testConfig(rec)
	cfg.Restart.MaxCrashes = 3
	gaveUp := make(chan error, 2)
	in := load(t, cfg, host.LoadSpec{OnGiveUp: func(err error) { gaveUp <- err }})
	for i := range 3 {
		if res := call(t, in, "exit", nil); res.Error == nil || res.Error.Code != wire.CodeCrashed {
			t.Fatalf("crash %d: %+v", i, res.Error)
		}
	}
	res := call(t, in, "echo", "x")
	if res.Error == nil || res.Error.Code != wire.CodeUnavailable || res.Error.Retryable ||
		!strings.Contains(res.Error.Message, "crashed 3 times") || !strings.Contains(res.Error.Message, "exit status 7") {
		t.Fatalf("after giving up: %+v; want a final unavailable naming the crashes", res.Error)
	}
	rec.waitFor(t, "plugin given up", "plugin=chaos")
	// The host hears of it once, so that it quarantines the plugin.
	select {
	case err := <-gaveUp:
		if !strings.Contains(err.Error(), "crashed 3 times") {
			t.Errorf("OnGiveUp(%v)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnGiveUp was not called")
	}
	select {
	case err := <-gaveUp:
		t.Errorf("OnGiveUp called again: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestConcurrencyLimit(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{Limits: host.Limits{Concurrency: 1}})
	done := make(chan wire.Result)
	go func() { done <- call(t, in, "sleep", "1s") }()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := callCtx(t, ctx, in, "echo", "x")
	if res.Error == nil || res.Error.Code != wire.CodeTimeout || !strings.Contains(res.Error.Message, "call slots") {
		t.Fatalf("second call = %+v; want timeout waiting for a slot", res.Error)
	}
	if res := <-done; res.Error != nil {
		t.Fatalf("first call: %v", res.Error)
	}
}

func TestCloseStopsProcess(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{})
	p := pid(t, in)
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(p) {
		t.Fatalf("plugin pid %d alive after Close", p)
	}
	if res := call(t, in, "echo", "x"); res.Error == nil || res.Error.Code != wire.CodeUnavailable {
		t.Fatalf("call after Close: %+v", res.Error)
	}
}

func TestBadPlugins(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		want       []string
	}{
		{"missing", filepath.Join(dir, "nope"), []string{`"missing"`, "no such file"}},
		{"wasm", write("m.wasm", "\x00asm\x01\x00\x00\x00", 0o755), []string{`"wasm"`, "is a WASM module"}},
		{"not executable", write("plain", "#!/bin/sh\n", 0o644), []string{`"not executable"`, "not executable"}},
		{"no handshake", write("silent", "#!/bin/sh\nexec sleep 60\n", 0o755), []string{`"no handshake"`, "no handshake within 1s"}},
		{"dies at once", write("dies", "#!/bin/sh\necho broken >&2\nexit 3\n", 0o755), []string{`"dies at once"`, "exit status 3"}},
		{"garbage handshake", write("garbage", "#!/bin/sh\necho hello world\nexec sleep 60\n", 0o755), []string{`"garbage handshake"`, "Unrecognized remote plugin message"}},
		{"other ABI", write("abi2", "#!/bin/sh\necho '1|2|unix|/nonexistent|grpc|'\nexec sleep 60\n", 0o755), []string{`"other ABI"`, "another plugin ABI", "Plugin version: 2"}},
	}
	cfg := testConfig(newRecorder())
	cfg.StartTimeout = time.Second
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			in, err := New(cfg).Load(context.Background(), host.LoadSpec{Name: tc.name, Path: tc.path})
			if err == nil {
				in.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !containsAll(err.Error(), tc.want...) {
				t.Fatalf("error %q; want it to contain %q", err, tc.want)
			}
			if took := time.Since(start); took > cfg.StartTimeout+margin {
				t.Errorf("Load failed after %v; start timeout %v", took, cfg.StartTimeout)
			}
		})
	}
}

// TestNoOrphansWhenAgentIsKilled re-executes the test binary as an agent
// that loads the plugin, SIGKILLs that agent, and checks that the plugin
// process goes with it.
func TestNoOrphansWhenAgentIsKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// The killed agent cannot remove go-plugin's socket directory; keep it
	// where the test cleans up.
	cmd.Env = append(os.Environ(), envAgent+"="+chaosPlugin, "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("agent said %q: %v", line, err)
	}
	var plugin int
	if _, err := fmt.Sscanf(line, "plugin pid %d", &plugin); err != nil {
		t.Fatalf("agent said %q: %v", line, err)
	}
	if !alive(plugin) {
		t.Fatalf("plugin pid %d not running while the agent is", plugin)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(plugin) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin pid %d outlived its SIGKILLed agent", plugin)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunByHand(t *testing.T) {
	cmd := exec.Command(chaosPlugin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v; want status 1", err)
	}
	for _, want := range []string{"is a depai plugin", `"chaos"`, "depai plugin inspect"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
