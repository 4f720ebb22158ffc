package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/transports"
)

// examplePlugin is the absolute path of an example plugin's package dir.
func examplePlugin(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "examples", "plugins", name)
}

// TestPluginsOnBothTransports builds the example plugins from source (WASM
// and native) and drives them the way an operator and a model would.
func TestPluginsOnBothTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	for _, transport := range []string{"wasm", "process"} {
		t.Run(transport, func(t *testing.T) {
			srv := llmtest.NewServer(t,
				llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "g", Name: "hello.greet", Arguments: `{"name":"Ada"}`}}},
				llmtest.Reply{Text: "I greeted Ada."},
			)
			f, _ := openFleet(t, fmt.Sprintf(`
agents:
  - name: rover
    model: {base_url: %q, model: m}
    memory: {read: [agent/rover, shared, notes], write: [agent/rover, shared, notes]}
    plugins:
      - name: hello
        path: %q
        transport: %s
      - name: notes
        path: %q
        transport: %s
        grants: {memory_read: [notes], memory_write: [notes]}
`, srv.URL, examplePlugin(t, "hello"), transport, examplePlugin(t, "notes"), transport))
			if err := f.WaitPlugins(t.Context()); err != nil {
				t.Fatal(err)
			}
			a, err := f.Agent("rover")
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct{ in, want string }{
				{"/plugins", "hello.greet"},
				{"/tools", "notes.add"},
				{`/call hello.greet {"name":"Grace"}`, "Hello, Grace!"},
				{`/call notes.add {"text":"dock B is blocked"}`, "{"},
				{`/call notes.find {}`, "dock B is blocked"},
			} {
				if got := reply(collect(t, a, tc.in)); !strings.Contains(got, tc.want) {
					t.Errorf("%s → %q, want %q", tc.in, got, tc.want)
				}
			}
			for _, in := range []string{`/call hello.greet {"name":""}`, `/call hello.greet {"nom":"x"}`} {
				if got := failure(t, a, in); !strings.Contains(got.Error, "invalid_argument") {
					t.Errorf("%s → %+v", in, got)
				}
			}

			evs := collect(t, a, "greet Ada")
			if got := reply(evs); got != "I greeted Ada." {
				t.Errorf("reply = %q", got)
			}
			last := srv.Requests()[1].Messages
			if tr := last[len(last)-1]; !strings.Contains(tr.Content, "Hello, Ada!") {
				t.Errorf("tool result given to the model = %+v", tr)
			}

			if got := reply(collect(t, a, "/plugins unload hello")); !strings.Contains(got, "1 tools removed") {
				t.Errorf("unload = %q", got)
			}
			if got := failure(t, a, `/call hello.greet {"name":"x"}`); !strings.Contains(got.Error, "no tool") {
				t.Errorf("call after unload = %+v", got)
			}
			if got := reply(collect(t, a, "/plugins load hello")); !strings.Contains(got, "loaded") {
				t.Errorf("load = %q", got)
			}
			if got := reply(collect(t, a, "/plugins reload notes")); !strings.Contains(got, "reloaded") {
				t.Errorf("reload = %q", got)
			}
			if got := reply(collect(t, a, `/call notes.find {}`)); !strings.Contains(got, "dock B is blocked") {
				t.Errorf("notes after reload = %q", got)
			}
		})
	}
}

// TestPluginWithoutGrantsIsNotLoaded: a plugin requesting capabilities its
// config does not grant is refused with an error listing them, and the agent
// runs on without it.
func TestPluginWithoutGrantsIsNotLoaded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	f, _ := openFleet(t, fmt.Sprintf(`
name: rover
plugins:
  - name: notes
    path: %q
  - name: hello
    path: %q
`, examplePlugin(t, "notes"), examplePlugin(t, "hello")))
	err := f.WaitPlugins(t.Context())
	if err == nil || !strings.Contains(err.Error(), "memory_write") || !strings.Contains(err.Error(), `"notes"`) {
		t.Fatalf("error = %v, want one naming notes and the missing memory_write grant", err)
	}
	a, _ := f.Agent("rover")
	for _, tc := range []struct{ in, want string }{
		{"/plugins", "NOT LOADED notes"},
		{`/call hello.greet {"name":"Ada"}`, "Hello, Ada!"},
		{"/status", "idle"},
	} {
		if got := reply(collect(t, a, tc.in)); !strings.Contains(got, tc.want) {
			t.Errorf("%s → %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCloseWhilePluginCompiles: closing a fleet whose WASM plugin is still
// being compiled (which cannot be interrupted) returns at once, cleanly —
// it used to fail with "context deadline exceeded" and leave memory open.
func TestCloseWhilePluginCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	wasmFile := filepath.Join(t.TempDir(), "hello.wasm")
	if _, err := build.Plugin(t.Context(), build.Options{Dir: examplePlugin(t, "hello"), Out: wasmFile, CacheDir: filepath.Join(sharedCache, "plugins")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(fmt.Sprintf("name: rover\nplugins:\n  - path: %q\n", wasmFile)))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh cache dir: the module must be compiled, not read from cache.
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"), CacheDir: filepath.Join(dir, "cache"), NewTransports: transports.Default})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatalf("close during compile: %v", err)
	}
	// Memory was closed: the data dir opens again at once.
	again, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"), CacheDir: filepath.Join(dir, "cache"), NewTransports: transports.Default})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.WaitPlugins(t.Context()); err != nil {
		t.Error(err)
	}
	if err := again.Close(t.Context()); err != nil {
		t.Error(err)
	}
}

// TestFailedReloadKeepsTools: when a reload fails the old plugin keeps
// running, and so its tools stay callable (they used to be dropped first).
func TestFailedReloadKeepsTools(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	wasmFile := filepath.Join(t.TempDir(), "hello.wasm")
	if _, err := build.Plugin(t.Context(), build.Options{Dir: examplePlugin(t, "hello"), Out: wasmFile, CacheDir: filepath.Join(sharedCache, "plugins")}); err != nil {
		t.Fatal(err)
	}
	f, _ := openFleet(t, fmt.Sprintf("name: rover\nplugins:\n  - path: %q\n", wasmFile))
	if err := f.WaitPlugins(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("rover")
	if err := os.Remove(wasmFile); err != nil {
		t.Fatal(err)
	}
	if got := failure(t, a, "/plugins reload hello"); !strings.Contains(got.Error, "no such file") {
		t.Errorf("failed reload = %+v", got)
	}
	if got := reply(collect(t, a, `/call hello.greet {"name":"Ada"}`)); !strings.Contains(got, "Hello, Ada!") {
		t.Errorf("call after a failed reload = %q", got)
	}
}

// refusingTransport fails every load: a stand-in for a wired transport.
type refusingTransport struct{}

func (refusingTransport) Load(context.Context, host.LoadSpec) (host.Instance, error) {
	return nil, errors.New("refused")
}

// emptyModuleFleet writes an empty WASM module and a config of one agent
// that loads it once for each plugin name.
func emptyModuleFleet(t *testing.T, names ...string) (string, *config.File) {
	t.Helper()
	dir := t.TempDir()
	module := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := "name: rover\nplugins:\n"
	for _, n := range names {
		text += fmt.Sprintf("  - {name: %s, path: %q}\n", n, module)
	}
	file, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return dir, file
}

// TestOpenWiresTransports: package agent makes no plugin transport itself
// (so that it does not link wazero and go-plugin). A config that names a
// plugin does not open without its transport, and says what to wire;
// Options.NewTransports is called with the fleet's cache dir and is what
// the plugins load through.
func TestOpenWiresTransports(t *testing.T) {
	dir, file := emptyModuleFleet(t, "m")
	var err error
	_, err = agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "none")})
	if err == nil || !strings.Contains(err.Error(), `plugin "m": no wasm transport is wired`) {
		t.Fatalf("open without transports: %v, want the missing wasm transport named", err)
	}
	cache := filepath.Join(dir, "cache")
	var gotCache string
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"), CacheDir: cache,
		NewTransports: func(cacheDir string, _ *slog.Logger) (map[string]host.Transport, error) {
			gotCache = cacheDir
			return map[string]host.Transport{host.KindWASM: refusingTransport{}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	if gotCache != cache {
		t.Errorf("NewTransports got cache dir %q, want %q", gotCache, cache)
	}
	if err := f.WaitPlugins(t.Context()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("plugins loaded through %v, want the wired transport's refusal", err)
	}
	_, err = agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "failed"),
		NewTransports: func(string, *slog.Logger) (map[string]host.Transport, error) {
			return nil, errors.New("no wazero here")
		}})
	if err == nil || !strings.Contains(err.Error(), "no wazero here") {
		t.Errorf("open with a failing NewTransports: %v", err)
	}
}

// warmingTransport records its Warm calls.
type warmingTransport struct {
	refusingTransport
	warmed chan struct{}
}

func (w warmingTransport) Warm() { w.warmed <- struct{}{} }

// TestOpenWarmsTransports: a transport with set-up of its own (Warm: the
// process transport's launcher and kernel probe) is warmed at Open when
// the config names a plugin of its kind, once however many there are, and
// not when it names none.
func TestOpenWarmsTransports(t *testing.T) {
	dir, file := emptyModuleFleet(t, "a", "b")
	used, unused := warmingTransport{warmed: make(chan struct{}, 4)}, warmingTransport{warmed: make(chan struct{}, 4)}
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"),
		Transports: map[string]host.Transport{host.KindWASM: used, host.KindProcess: unused}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	select {
	case <-used.warmed:
	case <-time.After(10 * time.Second):
		t.Fatal("the wasm transport was not warmed")
	}
	_ = f.WaitPlugins(t.Context())
	if n := len(used.warmed); n != 0 {
		t.Errorf("the wasm transport was warmed %d more times", n)
	}
	if n := len(unused.warmed); n != 0 {
		t.Errorf("the process transport, which no plugin uses, was warmed %d times", n)
	}
}

// closingTransport counts its Close calls.
type closingTransport struct {
	refusingTransport
	closed *atomic.Int32
}

func (c closingTransport) Close(context.Context) error {
	c.closed.Add(1)
	return nil
}

// The transports NewTransports made are the fleet's, and Close closes them
// (the WASM transport's compilation cache was never closed); those passed
// in Options.Transports are the caller's and stay open.
func TestCloseClosesTheTransportsItMade(t *testing.T) {
	dir, file := emptyModuleFleet(t, "m")
	var made, given atomic.Int32
	for i, opts := range []agent.Options{
		{NewTransports: func(string, *slog.Logger) (map[string]host.Transport, error) {
			return map[string]host.Transport{host.KindWASM: closingTransport{closed: &made}}, nil
		}},
		{Transports: map[string]host.Transport{host.KindWASM: closingTransport{closed: &given}}},
	} {
		opts.DataDir = filepath.Join(dir, fmt.Sprint("data", i))
		f, err := agent.Open(t.Context(), file, opts)
		if err != nil {
			t.Fatal(err)
		}
		_ = f.WaitPlugins(t.Context())
		if err := f.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if made.Load() != 1 || given.Load() != 0 {
		t.Errorf("closed %d made and %d given transports, want 1 and 0", made.Load(), given.Load())
	}
}

// slowWarmTransport takes a while to warm and says when it is done.
type slowWarmTransport struct {
	refusingTransport
	done *atomic.Bool
}

func (w slowWarmTransport) Warm() {
	time.Sleep(200 * time.Millisecond)
	w.done.Store(true)
}

// Close waits for a warm-up still running: it was a goroutine of its own,
// which could outlive the fleet and use a transport already closed.
func TestCloseWaitsForWarm(t *testing.T) {
	dir, file := emptyModuleFleet(t, "m")
	var done atomic.Bool
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"),
		Transports: map[string]host.Transport{host.KindWASM: slowWarmTransport{done: &done}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !done.Load() {
		t.Error("Close returned while the transport was still warming")
	}
}
