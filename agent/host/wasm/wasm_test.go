package wasm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/agent/host/wasm/wasmtest"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/sdk/wire"
)

const plugins = "../../../examples/plugins/"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newHost returns a real host with the WASM transport and a badger store.
func newHost(t testing.TB) *host.Host {
	t.Helper()
	return wasmtest.NewHost(t, host.Config{Logger: quiet})
}

func call(t testing.TB, tl tool.Tool, args string) (string, *wire.Error) {
	t.Helper()
	return callCtx(context.Background(), t, tl, args)
}

func callCtx(ctx context.Context, t testing.TB, tl tool.Tool, args string) (string, *wire.Error) {
	t.Helper()
	out, err := tl.Call(ctx, json.RawMessage(args))
	if err != nil {
		we, ok := errors.AsType[*wire.Error](err)
		if !ok {
			t.Fatalf("%s: error %v is not a *wire.Error", tl.Spec().Name, err)
		}
		return "", we
	}
	return string(out), nil
}

// toolOf finds a tool by the name its manifest declares (the host
// qualifies it when the plugin is loaded under another name).
func toolOf(t testing.TB, p *host.Plugin, name string) tool.Tool {
	t.Helper()
	if tl, ok := p.Tool(name); ok {
		return tl
	}
	t.Fatalf("plugin %s has no tool %s", p.Name(), name)
	return nil
}

func TestHello(t *testing.T) {
	h := newHost(t)
	p, err := h.Load(context.Background(), host.PluginSpec{Name: "hello", Path: wasmtest.Build(t, plugins+"hello")})
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Manifest(); m.Name != "hello" || m.ABI != wire.ABIVersion || len(m.Tools) != 1 {
		t.Fatalf("manifest = %+v", m)
	}
	greet := toolOf(t, p, "hello.greet")
	if s := greet.Spec(); s.Source != "hello" || !strings.Contains(string(s.InputSchema), `"name"`) {
		t.Fatalf("spec = %+v", s)
	}
	tests := []struct {
		args, want, code string
	}{
		{`{"name":"Ada"}`, `{"greeting":"Hello, Ada!"}`, ""},
		{`{"name":"  "}`, "", wire.CodeInvalidArgument}, // the handler's own error
		{`{"nom":"Ada"}`, "", wire.CodeInvalidArgument}, // the schema's
		{`{"name":7}`, "", wire.CodeInvalidArgument},
	}
	for _, tt := range tests {
		got, werr := call(t, greet, tt.args)
		if tt.code != "" {
			if werr == nil || werr.Code != tt.code {
				t.Errorf("%s: got %s, %v; want code %s", tt.args, got, werr, tt.code)
			}
			continue
		}
		if werr != nil || got != tt.want {
			t.Errorf("%s = %s, %v; want %s", tt.args, got, werr, tt.want)
		}
	}
}

// TestGuestValidates calls the instance directly, bypassing the host's
// schema check, so the SDK's own validation answers.
func TestGuestValidates(t *testing.T) {
	tr, err := wasm.New(wasm.Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Config{Logger: quiet})
	inst, err := tr.Load(context.Background(), host.LoadSpec{Name: "hello", Path: wasmtest.Build(t, plugins+"hello"), Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	for _, c := range []struct{ method, payload, code string }{
		{"hello.greet", `{"nom":1}`, wire.CodeInvalidArgument},
		{"hello.greet", `not json`, wire.CodeInvalidArgument},
		{"hello.nope", `{}`, wire.CodeNotFound},
	} {
		res := inst.Call(context.Background(), wire.Call{Method: c.method, Payload: json.RawMessage(c.payload)})
		if res.Error == nil || res.Error.Code != c.code {
			t.Errorf("%s(%s) = %s, %v; want code %s", c.method, c.payload, res.Payload, res.Error, c.code)
		}
	}
}

// TestGuestDecodes: the SDK guest's codec decodes what the host's schema
// check admits — an integer written 2.0 included, which encoding/json
// refused — and, for a call the host did not check, refuses what the schema
// refuses (a missing required property, an unknown one, null for a string).
func TestGuestDecodes(t *testing.T) {
	tr, err := wasm.New(wasm.Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := tr.Load(context.Background(), host.LoadSpec{Name: "chaos", Path: wasmtest.Build(t, plugins+"chaos"), Host: host.New(host.Config{Logger: quiet})})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	ctx := context.Background()
	res := inst.Call(ctx, wire.Call{Method: "chaos.echo", Payload: json.RawMessage(`{"text":"a<b","count":2.0,"tags":null}`), Checked: true})
	if res.Error != nil || string(res.Payload) != `{"text":"a\u003cb","count":2}` {
		t.Errorf("checked echo = %s, %v", res.Payload, res.Error)
	}
	for payload, want := range map[string]string{
		`{}`:                       `missing property "text"`,
		`{"text":"a","extra":1}`:   `unknown property "extra"`,
		`{"text":null}`:            `null for string`,
		`{"text":"a","count":1.5}`: `cannot unmarshal number 1.5`,
	} {
		res := inst.Call(ctx, wire.Call{Method: "chaos.echo", Payload: json.RawMessage(payload)})
		if res.Error == nil || res.Error.Code != wire.CodeInvalidArgument || !strings.Contains(res.Error.Message, want) {
			t.Errorf("unchecked %s = %s, %v; want invalid_argument saying %q", payload, res.Payload, res.Error, want)
		}
	}
}

func TestBadModules(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "plugin.wasm")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hello, err := os.ReadFile(wasmtest.Build(t, plugins+"hello"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.wasm")
	if err := os.WriteFile(truncated, hello[:4096], 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"text", text, "is not a WASM module"},
		{"missing", filepath.Join(dir, "nope.wasm"), "no such file"},
		{"truncated", truncated, "invalid WASM module"},
		{"noexports", wasmtest.Build(t, "testdata/noexports"), "lacks the exports [abi_version alloc call describe]"},
		{"badabi", wasmtest.Build(t, "testdata/badabi"), "speaks plugin ABI 99; this agent speaks ABI 1"},
	}
	tr, err := wasm.New(wasm.Config{CacheDir: wasmbuild.CacheDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Config{Logger: quiet})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tr.Load(context.Background(), host.LoadSpec{Name: "bad-" + tt.name, Path: tt.path, Host: h})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"bad-`+tt.name+`"`) {
				t.Fatalf("Load = %v; want an error naming the plugin and saying %q", err, tt.want)
			}
		})
	}
}

func TestMalformedResults(t *testing.T) {
	h := newHost(t)
	p, err := h.Load(context.Background(), host.PluginSpec{Name: "raw", Path: wasmtest.Build(t, "testdata/raw"), Limits: host.Limits{Concurrency: 1}})
	if err != nil {
		t.Fatal(err)
	}
	good := toolOf(t, p, "raw.ok")
	for _, name := range []string{"raw.status", "raw.notjson", "raw.badptr", "raw.empty", "raw.badcall"} {
		_, werr := call(t, toolOf(t, p, name), `{}`)
		if werr == nil || werr.Code != wire.CodeCrashed || !strings.Contains(werr.Message, `"raw"`) {
			t.Errorf("%s: error %v; want code crashed naming the plugin", name, werr)
		}
		// The broken instance was replaced: the next call is served.
		if out, werr := call(t, good, `{}`); werr != nil || out != `{"ok":true}` {
			t.Fatalf("after %s: raw.ok = %s, %v", name, out, werr)
		}
	}
}

// TestChaos runs every misbehaving tool of examples/plugins/chaos while a
// second plugin serves calls in a loop. Each bad call must come back with
// its typed error — not hang — and the good calls must all succeed.
func TestChaos(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	chaos, err := h.Load(ctx, host.PluginSpec{
		Name: "chaos", Path: wasmtest.Build(t, plugins+"chaos"),
		Grants: wire.Capabilities{Clock: true},
		Limits: host.Limits{MemoryBytes: 32 << 20, MaxMessageBytes: 64 << 10, Concurrency: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	hello, err := h.Load(ctx, host.PluginSpec{Name: "hello", Path: wasmtest.Build(t, plugins+"hello")})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var goodCalls atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		greet := toolOf(t, hello, "hello.greet")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if out, werr := call(t, greet, `{"name":"Bob"}`); werr != nil || out != `{"greeting":"Hello, Bob!"}` {
				t.Errorf("hello.greet during chaos = %s, %v", out, werr)
				return
			}
			goodCalls.Add(1)
		}
	})
	const short, long = 300 * time.Millisecond, 20 * time.Second
	tests := []struct {
		tool, args, code, says string
		timeout                time.Duration
	}{
		{"chaos.panic", `{}`, wire.CodeCrashed, "deliberate panic", long},
		{"chaos.spin", `{}`, wire.CodeTimeout, "deadline", short},
		{"chaos.hog", `{}`, wire.CodeCrashed, "out of memory", long},
		{"chaos.big", `{"bytes":100000}`, wire.CodeTooLarge, "limit", long},
		{"chaos.sleep", `{"millis":60000}`, wire.CodeTimeout, "deadline", short},
		{"chaos.exit", `{}`, wire.CodeCrashed, "exited with code 3", long},
		{"chaos.steal", `{}`, wire.CodeDenied, "root-password", long},
	}
	echo := toolOf(t, chaos, "chaos.echo")
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, tt.timeout)
			defer cancel()
			start := time.Now()
			_, werr := callCtx(cctx, t, toolOf(t, chaos, tt.tool), tt.args)
			// A generous bound: this checks that the call cannot hang,
			// not how fast the host is.
			if took := time.Since(start); took > tt.timeout+5*time.Second {
				t.Errorf("took %v with a %v deadline", took, tt.timeout)
			}
			if werr == nil || werr.Code != tt.code || !strings.Contains(werr.Message, tt.says) {
				t.Fatalf("error %v; want code %s saying %q", werr, tt.code, tt.says)
			}
			if out, werr := call(t, echo, `{"text":"still here"}`); werr != nil || out != `{"text":"still here"}` {
				t.Fatalf("chaos.echo after %s = %s, %v", tt.tool, out, werr)
			}
		})
	}
	close(stop)
	wg.Wait()
	if goodCalls.Load() == 0 {
		t.Fatal("no hello.greet call completed during the chaos")
	}
}

func TestCacheDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	tr, err := wasm.New(wasm.Config{CacheDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Config{Logger: quiet})
	// The smallest module: under -race compiling is slow.
	inst, err := tr.Load(context.Background(), host.LoadSpec{Name: "raw", Path: wasmtest.Build(t, "testdata/raw"), Host: h})
	if err != nil {
		t.Fatal(err)
	}
	_ = inst.Close(context.Background())
	_ = tr.Close(context.Background())
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode = %v; want 0700", fi.Mode().Perm())
	}
	var files int
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Error("the compilation cache is empty after a load")
	}
	// The module's rewrite is kept too, and a second start uses it.
	rewrites, _ := filepath.Glob(filepath.Join(dir, "interrupt-v*", "*.wasm"))
	if len(rewrites) != 1 {
		t.Fatalf("rewrites cached: %v; want one", rewrites)
	}
	if b, err := os.ReadFile(rewrites[0]); err != nil || !bytes.Contains(b, []byte("depai.interrupt")) {
		t.Fatalf("cached rewrite: %v, has the interrupt export: %v", err, bytes.Contains(b, []byte("depai.interrupt")))
	}
	tr, err = wasm.New(wasm.Config{CacheDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	inst, err = tr.Load(context.Background(), host.LoadSpec{Name: "raw", Path: wasmtest.Build(t, "testdata/raw"), Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if r := inst.Call(context.Background(), wire.Call{Method: "raw.ok"}); r.Error != nil {
		t.Fatal(r.Error)
	}
	_ = inst.Close(context.Background())
}

type report struct {
	Year    int    `json:"year"`
	Random  string `json:"random"`
	Env     int    `json:"env"`
	FileErr string `json:"file_err"`
	DialErr string `json:"dial_err"`
}

// TestSandbox checks what a module sees: no files, environment or
// sockets ever; a fixed clock unless granted; real randomness always. Each
// load is a fresh runtime, as a fresh run of the agent is: without the
// random grant every one of them used to draw the same bytes.
func TestSandbox(t *testing.T) {
	h := newHost(t)
	path := wasmtest.Build(t, "testdata/sandbox")
	look := func(name string, grants wire.Capabilities) report {
		p, err := h.Load(context.Background(), host.PluginSpec{Name: name, Path: path, Grants: grants})
		if err != nil {
			t.Fatal(err)
		}
		out, werr := call(t, toolOf(t, p, "sandbox.look"), `{}`)
		if werr != nil {
			t.Fatal(werr)
		}
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Env != 0 || r.FileErr == "" || r.DialErr == "" {
			t.Errorf("%s sees the machine: %+v", name, r)
		}
		return r
	}
	bare1, bare2 := look("bare1", wire.Capabilities{}), look("bare2", wire.Capabilities{})
	if bare1.Year != 2022 {
		t.Errorf("without the clock grant the year is %d; want wazero's fixed epoch, 2022", bare1.Year)
	}
	if bare1.Random == bare2.Random || len(bare1.Random) < 16 {
		t.Errorf("two fresh runtimes drew %q and %q; want real randomness in each", bare1.Random, bare2.Random)
	}
	if err := h.Unload(context.Background(), "bare1"); err != nil {
		t.Fatal(err)
	}
	again := look("bare1", wire.Capabilities{})
	real1 := look("real1", wire.Capabilities{Clock: true})
	if real1.Year != time.Now().Year() {
		t.Errorf("with the clock grant the year is %d", real1.Year)
	}
	if again.Random == bare1.Random || again.Random == bare2.Random || real1.Random == bare1.Random {
		t.Errorf("runs drew %s, %s, %s and %s; want all different", bare1.Random, bare2.Random, again.Random, real1.Random)
	}
}

// TestLargeHostResult makes the host answer more than the guest's 4 KiB
// host-call buffer, which takes the host_result path.
func TestLargeHostResult(t *testing.T) {
	h := newHost(t)
	p, err := h.Load(context.Background(), host.PluginSpec{
		Name: "notes", Path: wasmtest.Build(t, plugins+"notes"),
		Grants: wire.Capabilities{MemoryRead: []string{"notes"}, MemoryWrite: []string{"notes"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	add, find := toolOf(t, p, "notes.add"), toolOf(t, p, "notes.find")
	text := strings.Repeat("n", 200)
	for range 40 {
		if _, werr := call(t, add, `{"text":"`+text+`"}`); werr != nil {
			t.Fatal(werr)
		}
	}
	out, werr := call(t, find, `{"limit":40}`)
	if werr != nil {
		t.Fatal(werr)
	}
	if n := strings.Count(out, text); n != 40 {
		t.Fatalf("found %d of 40 notes in %d bytes", n, len(out))
	}
	// A host result over the plugin's message limit is refused, not copied.
	small, err := h.Load(context.Background(), host.PluginSpec{
		Name: "small-notes", Path: wasmtest.Build(t, plugins+"notes"),
		Grants: wire.Capabilities{MemoryRead: []string{"notes"}, MemoryWrite: []string{"notes"}},
		Limits: host.Limits{MaxMessageBytes: 2048},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, werr := call(t, toolOf(t, small, "notes.find"), `{"limit":40}`); werr == nil || werr.Code != wire.CodeTooLarge {
		t.Fatalf("find with a 2 KiB limit: %v; want too_large", werr)
	}
}

// TestCloseDuringLoad: closing the transport while a load compiles (a
// fleet shutting down before its plugins loaded) neither crashes — wazero's
// shared engine, closed under a compile, used to panic on a nil map — nor
// leaves a plugin running: the load fails or its instance works until it
// is closed, and a load after Close fails, saying so.
func TestCloseDuringLoad(t *testing.T) {
	path := wasmtest.Build(t, plugins+"hello")
	h := host.New(host.Config{Logger: quiet})
	for i := range 3 {
		tr, err := wasm.New(wasm.Config{Logger: quiet}) // no cache dir: every load compiles, for a second or more
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			inst, err := tr.Load(context.Background(), host.LoadSpec{Name: "hello", Path: path, Host: h})
			if err == nil {
				err = inst.Close(context.Background())
			}
			done <- err
		}()
		time.Sleep(time.Duration(i) * 30 * time.Millisecond)
		if err := tr.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil && !strings.Contains(err.Error(), "transport closed") {
			t.Errorf("load %d, closed after %d ms: %v; want it loaded or refused as closed", i, i*30, err)
		}
		if _, err := tr.Load(context.Background(), host.LoadSpec{Name: "hello", Path: path, Host: h}); err == nil || !strings.Contains(err.Error(), "transport closed") {
			t.Errorf("load after Close: %v; want an error saying the transport is closed", err)
		}
	}
}
