package process

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/sdk/wire"
)

// buildExample builds examples/plugins/NAME as a native process plugin.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	res, err := build.Plugin(context.Background(), build.Options{
		Dir: filepath.Join("..", "..", "..", "examples", "plugins", name), Target: build.Native, CacheDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Path
}

// TestExampleChaosPlugin runs the chaos example — the same source the WASM
// chaos suite loads as a module — as a process plugin behind the real host.
func TestExampleChaosPlugin(t *testing.T) {
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindProcess: New(testConfig(newRecorder()))},
		Logger:     slog.New(newRecorder()),
	})
	defer h.Close(context.Background())
	p, err := h.Load(context.Background(), host.PluginSpec{
		Name: "chaos", Kind: host.KindProcess, Path: buildExample(t, "chaos"),
		Limits: host.Limits{MaxMessageBytes: 1 << 20, CallTimeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]func(context.Context, json.RawMessage) (json.RawMessage, error){}
	for _, tl := range p.Tools() {
		tools[tl.Spec().Name] = tl.Call
	}
	echo := func() error {
		out, err := tools["chaos.echo"](context.Background(), json.RawMessage(`{"text":"still here"}`))
		if err == nil && string(out) != `{"text":"still here"}` {
			err = errors.New("echo answered " + string(out))
		}
		return err
	}
	if err := echo(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tool    string
		args    string
		timeout time.Duration
		code    string
	}{
		{"chaos.panic", `{}`, 0, wire.CodeCrashed},
		{"chaos.spin", `{}`, 300 * time.Millisecond, wire.CodeTimeout},
		{"chaos.hog", `{}`, 0, wire.CodeCrashed},
		{"chaos.big", `{"bytes":2000000}`, 0, wire.CodeTooLarge},
		{"chaos.sleep", `{"millis":5000}`, 300 * time.Millisecond, wire.CodeTimeout},
		{"chaos.steal", `{}`, 0, wire.CodeDenied},
		{"chaos.exit", `{}`, 0, wire.CodeCrashed},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if tc.timeout > 0 {
			ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
		}
		start := time.Now()
		_, err := tools[tc.tool](ctx, json.RawMessage(tc.args))
		took := time.Since(start)
		cancel()
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tc.code {
			t.Errorf("%s: %v; want code %s", tc.tool, err, tc.code)
		}
		if tc.timeout > 0 && took > tc.timeout+margin {
			t.Errorf("%s returned after %v; deadline %v", tc.tool, took, tc.timeout)
		}
		// The plugin serves again, from a restarted process where needed.
		deadline := time.Now().Add(10 * time.Second)
		for err := echo(); err != nil; err = echo() {
			if time.Now().After(deadline) {
				t.Fatalf("after %s: echo still fails: %v", tc.tool, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestExampleHelloPlugin is the smallest example as a process plugin.
func TestExampleHelloPlugin(t *testing.T) {
	in := load(t, testConfig(newRecorder()), host.LoadSpec{Name: "hello", Path: buildExample(t, "hello")})
	res := call(t, in, "hello.greet", map[string]string{"name": "Ada"})
	if res.Error != nil || string(res.Payload) != `{"greeting":"Hello, Ada!"}` {
		t.Fatalf("hello.greet = %s, %v", res.Payload, res.Error)
	}
}
