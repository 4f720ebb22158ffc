package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// The containment tests load testdata/hostile, an attacker built from one
// source for both transports, into a real host and assert what each
// transport lets it do.

var (
	hostileMu    sync.Mutex
	hostileBuilt = map[string]string{}
)

// hostile builds testdata/hostile for a transport (once per test binary,
// cached by content hash across runs).
func hostile(t testing.TB, kind string) string {
	t.Helper()
	hostileMu.Lock()
	defer hostileMu.Unlock()
	if p, ok := hostileBuilt[kind]; ok {
		return p
	}
	target := build.WASM
	if kind == host.KindProcess {
		target = build.Native
	}
	res, err := build.Plugin(context.Background(), build.Options{Dir: "testdata/hostile", Target: target, CacheDir: filepath.Join(wasmtest.CacheDir(), "plugins")})
	if err != nil {
		t.Fatal(err)
	}
	hostileBuilt[kind] = res.Path
	return res.Path
}

// events collects what plugins emit.
type events struct {
	mu  sync.Mutex
	got map[string][]json.RawMessage
}

func (e *events) emit(_, topic string, payload json.RawMessage) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.got == nil {
		e.got = map[string][]json.RawMessage{}
	}
	e.got[topic] = append(e.got[topic], payload)
	return nil
}

func (e *events) count(topic string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.got[topic])
}

// containHost is a host with both real transports and a badger store.
func containHost(t testing.TB, cfg host.Config) *host.Host {
	return containHostWith(t, cfg, process.Config{})
}

func containHostWith(t testing.TB, cfg host.Config, pc process.Config) *host.Host {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	tr, err := wasm.New(wasm.Config{CacheDir: wasmtest.CacheDir(), Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store == nil {
		store, err := memory.Open(context.Background(), memory.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		cfg.Store = store
	}
	if pc.Logger == nil {
		pc.Logger = cfg.Logger
	}
	cfg.Transports = map[string]host.Transport{host.KindWASM: tr, host.KindProcess: process.New(pc)}
	h := host.New(cfg)
	t.Cleanup(func() {
		_ = h.Close(context.Background())
		_ = tr.Close(context.Background())
	})
	return h
}

func loadHostile(t testing.TB, h *host.Host, kind string, grants wire.Capabilities) *host.Plugin {
	t.Helper()
	return loadHostileSpec(t, h, host.PluginSpec{Kind: kind, Grants: grants})
}

func loadHostileSpec(t testing.TB, h *host.Host, spec host.PluginSpec) *host.Plugin {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "hostile"
	}
	spec.Path = hostile(t, spec.Kind)
	p, err := h.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type hostileOut struct {
	Value string `json:"value"`
	Err   string `json:"err"`
	Code  string `json:"code"`
	Count int    `json:"count"`
}

func callHostile(t testing.TB, p *host.Plugin, name string, args any) (hostileOut, *wire.Error) {
	t.Helper()
	b, _ := json.Marshal(args)
	tl, ok := p.Tool(name)
	if !ok {
		t.Fatalf("no tool %s", name)
	}
	out, err := tl.Call(context.Background(), b)
	if err != nil {
		we, ok := errors.AsType[*wire.Error](err)
		if !ok {
			t.Fatalf("%s: %v is not a *wire.Error", name, err)
		}
		return hostileOut{}, we
	}
	var o hostileOut
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatal(err)
	}
	return o, nil
}

func eachTransport(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range []string{host.KindWASM, host.KindProcess} {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

// TestRunHook: sdk.Run starts after the load with the host in its context,
// pushes events while the plugin is loaded, and stops on unload.
func TestRunHook(t *testing.T) {
	eachTransport(t, func(t *testing.T, kind string) {
		var ev events
		h := containHost(t, host.Config{Emit: ev.emit})
		loadHostile(t, h, kind, wire.Capabilities{Emit: []string{"run"}, Clock: true})
		deadline := time.Now().Add(10 * time.Second)
		for ev.count("run") < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("run hook emitted %d events in 10s; want 3", ev.count("run"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := h.Unload(context.Background(), "hostile"); err != nil {
			t.Fatal(err)
		}
		n := ev.count("run")
		time.Sleep(200 * time.Millisecond)
		if m := ev.count("run"); m > n+1 {
			t.Fatalf("run hook emitted %d events after unload", m-n)
		}
	})
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestLoadDeadline: a WASM plugin whose init() never returns fails its load
// at the deadline with an error that says so, while another plugin loads
// concurrently and is usable at once (such a plugin used to hang its
// agent's plugin loading for ever).
func TestLoadDeadline(t *testing.T) {
	hang := wasmtest.Build(t, "wasm/testdata/inithang")
	hello := wasmtest.Build(t, plugins+"hello")
	// Compile hello into the shared cache first, so that its load below
	// is quick whatever else this machine is doing.
	if _, err := containHost(t, host.Config{}).Load(context.Background(), host.PluginSpec{Name: "hello", Path: hello}); err != nil {
		t.Fatal(err)
	}
	h := containHost(t, host.Config{InitTimeout: 3 * time.Second})
	failed := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := h.Load(context.Background(), host.PluginSpec{Name: "hang", Path: hang})
		failed <- err
	}()
	for !slices.ContainsFunc(h.Status(), func(s host.Status) bool { return s.Name == "hang" && s.State == host.StateLoading }) {
		time.Sleep(time.Millisecond)
	}
	if _, err := h.Load(context.Background(), host.PluginSpec{Name: "hello", Path: hello}); err != nil {
		t.Fatal(err)
	}
	p, err := h.Await(context.Background(), "hello")
	if err != nil || p.Name() != "hello" {
		t.Fatalf("Await(hello) = %v, %v while hang loads", p, err)
	}
	if err := h.Unload(context.Background(), "hang"); err == nil || !strings.Contains(err.Error(), "still loading") {
		t.Fatalf("Unload of a loading plugin = %v; want it said to be still loading", err)
	}
	err = <-failed
	if err == nil || !strings.Contains(err.Error(), "did not finish initialising within 3s") || time.Since(start) > 2*time.Minute {
		t.Fatalf("Load(hang) = %v after %v; want the load deadline", err, time.Since(start))
	}
	if _, aerr := h.Await(context.Background(), "hang"); aerr == nil || aerr.Error() != err.Error() {
		t.Fatalf("Await(hang) = %v; want the load error", aerr)
	}
	states := map[string]host.State{}
	for _, s := range h.Status() {
		states[s.Name] = s.State
	}
	if states["hang"] != host.StateFailed || states["hello"] != host.StateLoaded {
		t.Fatalf("status = %v", states)
	}
}

// TestWASMHonestResults: a result over the message limit is too_large (a
// 50 MiB one used to be reported as timeout); an HTTP fetch that times out
// reaches the plugin, which can handle it (the fetch's timeout used to equal
// the call's, and the instance was stopped instead); a panic's stack goes
// to the log, not to the caller.
func TestWASMHonestResults(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer slow.Close()
	var logs syncBuffer
	h := containHost(t, host.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	big := loadHostileSpec(t, h, host.PluginSpec{Name: "big", Kind: host.KindWASM, Limits: host.Limits{MemoryBytes: 256 << 20, CallTimeout: time.Minute}})
	if _, werr := callHostile(t, big, "hostile.big", map[string]int{"n": 5}); werr == nil || werr.Code != wire.CodeTooLarge {
		t.Errorf("a 5 MiB result over the 4 MiB limit = %v; want too_large", werr)
	}
	p := loadHostileSpec(t, h, host.PluginSpec{Kind: host.KindWASM, Grants: wire.Capabilities{HTTP: []string{strings.TrimPrefix(slow.URL, "http://")}},
		Limits: host.Limits{CallTimeout: 2 * time.Second}})
	start := time.Now()
	out, werr := callHostile(t, p, "hostile.fetch", map[string]string{"path": slow.URL})
	if werr != nil || out.Code != wire.CodeTimeout || time.Since(start) > 2*time.Second {
		t.Errorf("fetch of a server that never answers = %+v, %v after %v; want the plugin to see timeout before its own deadline", out, werr, time.Since(start))
	}
	_, werr = callHostile(t, p, "hostile.panic", struct{}{})
	if werr == nil || werr.Code != wire.CodeCrashed || strings.Contains(werr.Message, "goroutine") || strings.Contains(werr.Message, ".go:") {
		t.Errorf("panic = %v; want crashed, one line, no stack", werr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "goroutine") {
		if time.Now().After(deadline) {
			t.Fatalf("the panic's stack is not in the log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFloodsBounded: what a plugin can make the host do is rate-limited on
// both transports — log lines, output, emits (and Emit returns the error
// when an event is dropped; it used to return nil) and denied calls, which
// reach the audit as one record per window with a count (one call used to
// write 4,779 audit records and 21 MiB of log).
func TestFloodsBounded(t *testing.T) {
	eachTransport(t, func(t *testing.T, kind string) {
		var logs syncBuffer
		g := &gate{}
		var ev events
		h := containHost(t, host.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Gate: g, Emit: ev.emit,
			Rates: host.Rates{Emits: 10, LogBytes: 16 << 10, DenialWindow: time.Second}})
		p := loadHostileSpec(t, h, host.PluginSpec{Kind: kind, Grants: wire.Capabilities{Emit: []string{"t"}, Clock: true},
			Limits: host.Limits{OutputBytes: 16 << 10, CallTimeout: 30 * time.Second}})
		out, werr := callHostile(t, p, "hostile.emit", map[string]int{"n": 200})
		if werr != nil || out.Count < 150 || !strings.Contains(out.Err, "rate_limited") || ev.count("t") > 40 {
			t.Errorf("200 emits at 10/s: %d refused (%s), %d delivered; want most refused, each with an error", out.Count, out.Err, ev.count("t"))
		}
		if _, werr := callHostile(t, p, "hostile.log", map[string]int{"n": 2000}); werr != nil {
			t.Fatal(werr)
		}
		if _, werr := callHostile(t, p, "hostile.stdout", map[string]int{"n": 2000}); werr != nil {
			t.Fatal(werr)
		}
		start := time.Now()
		out, werr = callHostile(t, p, "hostile.denied", map[string]int{"n": 400})
		if werr != nil || out.Count != 400 {
			t.Fatalf("denied calls: %+v, %v", out, werr)
		}
		elapsed := time.Since(start)
		time.Sleep(1500 * time.Millisecond)
		if n := len(logs.String()); n > 400<<10 {
			t.Errorf("%d KiB of log from 4 MiB of plugin log and output; want it bounded by the rates", n>>10)
		}
		_, _, all := g.snapshot()
		var audited []string
		sum := 0
		for _, a := range all {
			if rest, ok := strings.CutPrefix(a, "secret operator_token not granted x"); ok {
				audited = append(audited, a)
				n, _ := strconv.Atoi(rest)
				sum += n
			}
		}
		windows := int(elapsed/time.Second) + 1
		if len(audited) == 0 || len(audited) > 2*windows || sum > 400 {
			t.Errorf("audit records for 400 denied calls in %d windows: %v; want at most two per window, counting them (the calls beyond the host-call rate are rate_limited, not denied)", windows, audited)
		}
	})
}

// TestSensorBackoff: a failing sensor is polled less and less often (one
// polled every 10ms used to fail, and log, 100 times a second for ever).
func TestSensorBackoff(t *testing.T) {
	var mu sync.Mutex
	var fails []time.Time
	h := containHost(t, host.Config{OnReading: func(_, sensor string, _ json.RawMessage, err error) {
		if sensor == "hostile.fail" && err != nil {
			mu.Lock()
			fails = append(fails, time.Now())
			mu.Unlock()
		}
	}})
	loadHostile(t, h, host.KindWASM, wire.Capabilities{})
	time.Sleep(1500 * time.Millisecond)
	if err := h.Unload(context.Background(), "hostile"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// 10, 20, 40 … 1280ms: at most 8 polls in 1.5s, where a fixed 10ms
	// interval makes 150.
	if len(fails) == 0 || len(fails) > 8 {
		t.Fatalf("%d failed polls in 1.5s; want a doubling backoff", len(fails))
	}
}

// TestSameArtifactTwice: one artifact loads under two names, and the second
// copy's tools are qualified by its configured name (both copies used to
// offer the same tool names, and the second could not be added).
func TestSameArtifactTwice(t *testing.T) {
	h := containHost(t, host.Config{})
	hello := wasmtest.Build(t, plugins+"hello")
	a, err := h.Load(context.Background(), host.PluginSpec{Name: "hello", Path: hello})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Load(context.Background(), host.PluginSpec{Name: "hello-eu", Path: hello})
	if err != nil {
		t.Fatal(err)
	}
	if n1, n2 := a.Tools()[0].Spec().Name, b.Tools()[0].Spec().Name; n1 != "hello.greet" || n2 != "hello-eu.greet" {
		t.Fatalf("tool names %q and %q; want hello.greet and hello-eu.greet", n1, n2)
	}
	out, err := b.Tools()[0].Call(context.Background(), json.RawMessage(`{"name":"Ada"}`))
	if err != nil || !strings.Contains(string(out), "Ada") {
		t.Fatalf("the qualified tool = %s, %v", out, err)
	}
	for _, tc := range []struct{ configured, manifest, declared, want string }{
		{"weather", "weather", "weather.now", "weather.now"},
		{"weather-eu", "weather", "weather.now", "weather-eu.now"},
		{"weather-eu", "weather", "forecast", "weather-eu.forecast"},
	} {
		if got := host.ToolName(tc.configured, tc.manifest, tc.declared); got != tc.want {
			t.Errorf("ToolName(%q, %q, %q) = %q; want %q", tc.configured, tc.manifest, tc.declared, got, tc.want)
		}
	}
}
