package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/agent/tool"
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
	spec.Name, spec.Path = "hostile", hostile(t, spec.Kind)
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
	var tl tool.Tool
	for _, x := range p.Tools() {
		if x.Spec().Name == name {
			tl = x
		}
	}
	if tl == nil {
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
	h := containHost(t, host.Config{LoadTimeout: 3 * time.Second})
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
	if err == nil || !strings.Contains(err.Error(), "did not finish loading within 3s") || time.Since(start) > 2*time.Minute {
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
