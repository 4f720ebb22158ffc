// Package plugintest runs the plugin registered in the current test binary
// in-process, behind the agent's real plugin host: the same manifest and
// grant checks, input validation, and policy dispatcher for host calls, with
// a real memory store in a temporary directory. A plugin author tests tools
// without building anything:
//
//	func TestGreet(t *testing.T) {
//		pt := plugintest.New(t)
//		out, err := pt.Call("hello.greet", map[string]string{"name": "Ada"})
//		…
//	}
//
// Unlike the rest of sdk/, this package imports the agent's host (agent/host
// and memory): it is for tests, never linked into a plugin. It runs the
// plugin in the test's own process, outside the sandbox; agent/host/hosttest
// runs its real build under the sandbox and is what new tests should use.
//
// A run hook (sdk.Run) starts after the load and ends on Unload or at the
// test's end, as in production. The plugin's globals are this binary's, so
// every load in a test shares them: unload one load (Plugin.Unload) before
// the next when its run hook fills globals the handlers read.
package plugintest

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/hosttest"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// Option adjusts the host the plugin runs in.
type Option = hosttest.Option

// Grants sets what the plugin is granted. Without it the plugin is granted
// exactly what it requests.
func Grants(c wire.Capabilities) Option { return hosttest.Grants(c) }

// Config sets the plugin's config values (for granted keys).
func Config(kv map[string]string) Option { return hosttest.Config(kv) }

// Secrets sets the plugin's secret values (for granted names).
func Secrets(kv map[string]string) Option { return hosttest.Secrets(kv) }

// Logger receives the plugin's log lines and the host's audit lines.
// Default: discarded.
func Logger(l *slog.Logger) Option { return hosttest.Logger(l) }

// Limits sets the plugin's call timeout, message size and concurrency.
func Limits(l host.Limits) Option { return hosttest.Limits(l) }

// Emitted is one event the plugin published.
type Emitted = hosttest.Emitted

// Plugin is the plugin under test, loaded in a host: hosttest's, with the
// plugin run in this process instead of from its build.
type Plugin struct{ *hosttest.Plugin }

const kindInProcess = "inprocess"

// New loads the plugin registered in this test binary. A load error (bad
// manifest, requests not granted) fails the test.
func New(t testing.TB, opts ...Option) *Plugin {
	t.Helper()
	p, err := Load(t, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Load is New that returns the load error, to test how a plugin is refused.
func Load(t testing.TB, opts ...Option) (*Plugin, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	p, err := hosttest.Load(t, append([]Option{hosttest.Through(kindInProcess, inProcess{}, exe)}, opts...)...)
	if err != nil {
		return nil, err
	}
	return &Plugin{p}, nil
}

// CallAs is Call decoding the result into Out.
func CallAs[Out any](p *Plugin, name string, in any) (Out, error) {
	return hosttest.CallAs[Out](p.Plugin, name, in)
}

// inProcess is a host.Transport that runs registry.Default in this process.
// A plugin with a run hook (sdk.Run) gets it started after the load, as
// both real transports do, and ended — and waited for — by Close.
type inProcess struct{}

func (inProcess) Load(_ context.Context, spec host.LoadSpec) (host.Instance, error) {
	i := &inProcessInstance{name: spec.Name, host: spec.Host}
	if registry.Default.Manifest().Run {
		ctx, cancel := context.WithCancel(context.Background())
		i.stopRun = cancel
		i.running.Go(func() {
			res := registry.Default.Dispatch(ctx, hostCaller{name: i.name, host: i.host}, wire.Call{Method: wire.MethodRun})
			if res.Error != nil && ctx.Err() == nil {
				_, _ = i.host.HostCall(context.Background(), i.name, wire.HostLog, logLine("run hook ended: "+res.Error.Error()))
			}
		})
	}
	return i, nil
}

func logLine(msg string) []byte {
	b, _ := json.Marshal(wire.LogArgs{Level: "warn", Msg: msg})
	return b
}

type inProcessInstance struct {
	name    string
	host    host.Dispatcher
	stopRun context.CancelFunc
	running sync.WaitGroup
}

func (i *inProcessInstance) Manifest() wire.Manifest { return registry.Default.Manifest() }

func (i *inProcessInstance) Call(ctx context.Context, c wire.Call) wire.Result {
	return registry.Default.Dispatch(ctx, hostCaller{name: i.name, host: i.host}, c)
}

func (i *inProcessInstance) Close(context.Context) error {
	if i.stopRun != nil {
		i.stopRun()
		i.running.Wait()
	}
	return nil
}

// hostCaller routes the plugin's host calls to the host's dispatcher.
type hostCaller struct {
	name string
	host host.Dispatcher
}

func (h hostCaller) HostCall(ctx context.Context, method string, payload []byte) ([]byte, error) {
	if h.host == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "no host")
	}
	out, werr := h.host.HostCall(ctx, h.name, method, payload)
	if werr != nil {
		return nil, werr
	}
	return out, nil
}
