package wasm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/sdk/wire"
)

// capture is a host.Transport that remembers the last WASM plugin it
// loaded, so benchmarks can reach the pool behind a host.Plugin.
type capture struct {
	*Transport
	last *plugin
}

func (c *capture) Load(ctx context.Context, spec host.LoadSpec) (host.Instance, error) {
	inst, err := c.Transport.Load(ctx, spec)
	if err == nil {
		c.last = inst.(*plugin)
	}
	return inst, err
}

// benchPlugin loads a plugin package through a real host and returns both
// views of it.
func benchPlugin(b *testing.B, pkg string, grants wire.Capabilities) (*host.Plugin, *plugin) {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := New(Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	c := &capture{Transport: tr}
	// The host-call rate limit is lifted: these measure the call's cost,
	// which the limit would turn into waiting.
	h := host.New(host.Config{Transports: map[string]host.Transport{host.KindWASM: c}, Logger: quiet, Rates: host.Rates{HostCalls: 1e9}})
	p, err := h.Load(context.Background(), host.PluginSpec{Name: filepath.Base(pkg), Path: wasmbuild.Build(b, pkg), Grants: grants})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = h.Close(context.Background())
		_ = tr.Close(context.Background())
	})
	return p, c.last
}

// cpuMeter reports the process's CPU time per op beside the wall time: on
// a machine shared with other jobs the wall time also counts the time the
// benchmark waited for a core, its CPU time much less so.
func cpuMeter(b *testing.B) func() {
	b.Helper()
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// echo100 is a 100-byte JSON document, the same in and out.
var echo100 = json.RawMessage(`{"text":"the quick brown fox jumps over the lazy dog twice","count":7,"tags":["alpha","beta","gam"]}`)

// BenchmarkCall measures one call with 100 B of JSON in and out:
//   - raw: a guest that answers without the SDK (the transport's floor);
//   - sdk: chaos.echo through the SDK (decode In, encode Out) — the
//     instance call the host makes after validating;
//   - tool: the same through host.Plugin's tool, with the host's schema
//     validation of input and output.
func BenchmarkCall(b *testing.B) {
	if len(echo100) != 100 {
		b.Fatalf("echo100 is %d bytes", len(echo100))
	}
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		_, p := benchPlugin(b, "testdata/raw", wire.Capabilities{})
		c := wire.Call{Method: "raw.ok", Payload: echo100, Checked: true}
		defer cpuMeter(b)()
		for b.Loop() {
			if r := p.Call(ctx, c); r.Error != nil {
				b.Fatal(r.Error)
			}
		}
	})
	hp, p := benchPlugin(b, "../../../examples/plugins/chaos", wire.Capabilities{})
	b.Run("sdk", func(b *testing.B) {
		c := wire.Call{Method: "chaos.echo", Payload: echo100, Checked: true}
		defer cpuMeter(b)()
		for b.Loop() {
			if r := p.Call(ctx, c); r.Error != nil || len(r.Payload) != 100 {
				b.Fatal(r.Error, string(r.Payload))
			}
		}
	})
	b.Run("tool", func(b *testing.B) {
		var echo interface {
			Call(context.Context, json.RawMessage) (json.RawMessage, error)
		}
		for _, t := range hp.Tools() {
			if t.Spec().Name == "chaos.echo" {
				echo = t
			}
		}
		defer cpuMeter(b)()
		for b.Loop() {
			if _, err := echo.Call(ctx, echo100); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHostCall measures one guest→host call (host_call "clock",
// granted, through the policy dispatcher), 1000 per wasm call.
func BenchmarkHostCall(b *testing.B) {
	const per = 1000
	_, p := benchPlugin(b, "testdata/raw", wire.Capabilities{Clock: true})
	c := wire.Call{Method: "raw.hostcalls", Payload: json.RawMessage(strconv.Itoa(per))}
	ctx := context.Background()
	for b.Loop() {
		if r := p.Call(ctx, c); r.Error != nil || string(r.Payload) != strconv.Itoa(per) {
			b.Fatal(r.Error, string(r.Payload))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/hostcall")
}

// BenchmarkNewInstance measures starting an instance from the compiled
// module (the Go runtime's and the plugin's init included) and reports its
// linear memory.
func BenchmarkNewInstance(b *testing.B) {
	for _, pkg := range []string{"../../../examples/plugins/hello", "../../../examples/plugins/chaos"} {
		b.Run(filepath.Base(pkg), func(b *testing.B) {
			_, p := benchPlugin(b, pkg, wire.Capabilities{})
			ctx := context.Background()
			var mem uint32
			defer cpuMeter(b)()
			for b.Loop() {
				inst, err := p.newInstance(ctx)
				if err != nil {
					b.Fatal(err)
				}
				mem = inst.mem.Size()
				_ = inst.mod.Close(ctx)
			}
			b.ReportMetric(float64(mem), "linear-bytes/instance")
		})
	}
}

// BenchmarkStartFromCache measures a cold agent starting a plugin whose
// machine code is in the file cache: new transport, load (compile from
// cache, first instance, describe) and close.
func BenchmarkStartFromCache(b *testing.B) {
	path := wasmbuild.Build(b, "../../../examples/plugins/hello")
	dir := filepath.Join(b.TempDir(), "cache")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := host.New(host.Config{Logger: quiet})
	ctx := context.Background()
	start := func() {
		tr, err := New(Config{CacheDir: dir, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		inst, err := tr.Load(ctx, host.LoadSpec{Name: "hello", Path: path, Host: h})
		if err != nil {
			b.Fatal(err)
		}
		if r := inst.Call(ctx, wire.Call{Method: "hello.greet", Payload: json.RawMessage(`{"name":"x"}`)}); r.Error != nil || !strings.Contains(string(r.Payload), "Hello") {
			b.Fatal(r.Error)
		}
		_ = inst.Close(ctx)
		_ = tr.Close(ctx)
	}
	start() // fill the cache
	defer cpuMeter(b)()
	for b.Loop() {
		start()
	}
}

// BenchmarkRSSPerPlugin loads one artifact as several plugins (as several
// agents of a fleet would) through one transport, and reports the resident
// memory the first added and each further one added: the machine code is
// compiled, and held, once.
func BenchmarkRSSPerPlugin(b *testing.B) {
	const extra = 4
	path := wasmbuild.Build(b, "../../../examples/plugins/hello")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := host.New(host.Config{Logger: quiet})
	ctx := context.Background()
	var first, more float64
	for b.Loop() {
		tr, err := New(Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		var loaded []host.Instance
		load := func(name string) {
			inst, err := tr.Load(ctx, host.LoadSpec{Name: name, Path: path, Host: h})
			if err != nil {
				b.Fatal(err)
			}
			if r := inst.Call(ctx, wire.Call{Method: "hello.greet", Payload: json.RawMessage(`{"name":"x"}`)}); r.Error != nil {
				b.Fatal(r.Error)
			}
			loaded = append(loaded, inst)
		}
		r0 := rss(b)
		load("hello0")
		r1 := rss(b)
		for i := range extra {
			load("hello" + strconv.Itoa(i+1))
		}
		r2 := rss(b)
		first += float64(r1 - r0)
		more += float64(r2-r1) / extra
		for _, inst := range loaded {
			_ = inst.Close(ctx)
		}
		_ = tr.Close(ctx)
	}
	b.ReportMetric(first/float64(b.N)/(1<<20), "MiB-first")
	b.ReportMetric(more/float64(b.N)/(1<<20), "MiB-each-more")
}

// rss is the process's resident set after a collection that returned
// what it could to the OS.
func rss(tb testing.TB) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		tb.Skip("no /proc/self/statm:", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}
