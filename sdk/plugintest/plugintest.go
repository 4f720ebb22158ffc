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
package plugintest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// Option adjusts the host the plugin runs in.
type Option func(*options)

type options struct {
	grants          *wire.Capabilities
	config, secrets map[string]string
	logger          *slog.Logger
	limits          host.Limits
}

// Grants sets what the plugin is granted. Without it the plugin is granted
// exactly what it requests.
func Grants(c wire.Capabilities) Option { return func(o *options) { o.grants = &c } }

// Config sets the plugin's config values (for granted keys).
func Config(kv map[string]string) Option { return func(o *options) { o.config = kv } }

// Secrets sets the plugin's secret values (for granted names).
func Secrets(kv map[string]string) Option { return func(o *options) { o.secrets = kv } }

// Logger receives the plugin's log lines and the host's audit lines.
// Default: discarded.
func Logger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Limits sets the plugin's call timeout, message size and concurrency.
func Limits(l host.Limits) Option { return func(o *options) { o.limits = l } }

// Emitted is one event the plugin published.
type Emitted struct {
	Topic   string
	Payload json.RawMessage
}

// Plugin is the plugin under test, loaded in a host.
type Plugin struct {
	host   *host.Host
	plugin *host.Plugin
	store  memory.Store

	mu      sync.Mutex
	emitted []Emitted
}

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
	o := options{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, opt := range opts {
		opt(&o)
	}
	m := registry.Default.Manifest()
	grants := m.Requests
	if o.grants != nil {
		grants = *o.grants
	}
	store, err := memory.Open(context.Background(), memory.Config{Dir: t.TempDir()})
	if err != nil {
		return nil, fmt.Errorf("plugintest: %w", err)
	}
	pt := &Plugin{store: store}
	h := host.New(host.Config{
		Transports: map[string]host.Transport{kindInProcess: inProcess{}},
		Store:      store,
		Logger:     o.logger,
		Emit: func(_, topic string, payload json.RawMessage) error {
			pt.mu.Lock()
			defer pt.mu.Unlock()
			pt.emitted = append(pt.emitted, Emitted{Topic: topic, Payload: slices.Clone(payload)})
			return nil
		},
	})
	pt.host = h
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("plugintest: %w", err)
	}
	name := m.Name
	if name == "" {
		name = "plugin"
	}
	pt.plugin, err = h.Load(context.Background(), host.PluginSpec{
		Name: name, Path: exe, Kind: kindInProcess, Grants: grants,
		Config: o.config, Secrets: o.secrets, Limits: o.limits,
	})
	if err != nil {
		return nil, err
	}
	return pt, nil
}

// Manifest is what the plugin says about itself.
func (p *Plugin) Manifest() wire.Manifest { return p.plugin.Manifest() }

// Store is the memory the plugin's host calls reach, to seed or inspect.
func (p *Plugin) Store() memory.Store { return p.store }

// Emitted lists what the plugin published, oldest first.
func (p *Plugin) Emitted() []Emitted {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.emitted)
}

// Call runs a tool as the agent would: in is encoded as JSON (a
// json.RawMessage is sent as is), validated against the tool's schema, and
// the result comes back as JSON. Errors are *wire.Error values.
func (p *Plugin) Call(name string, in any) (json.RawMessage, error) {
	return p.CallContext(context.Background(), name, in)
}

// CallContext is Call with a context.
func (p *Plugin) CallContext(ctx context.Context, name string, in any) (json.RawMessage, error) {
	args, ok := in.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("plugintest: encode arguments for %s: %w", name, err)
		}
		args = b
	}
	for _, t := range p.plugin.Tools() {
		if t.Spec().Name == name {
			return t.Call(ctx, args)
		}
	}
	return nil, wire.Errorf(wire.CodeNotFound, "plugin %q has no tool %q", p.plugin.Name(), name)
}

// CallAs is Call decoding the result into Out.
func CallAs[Out any](p *Plugin, name string, in any) (Out, error) {
	var out Out
	b, err := p.Call(name, in)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("plugintest: decode %s result %s: %w", name, b, err)
	}
	return out, nil
}

// Poll reads a sensor once, as the host's poller would.
func (p *Plugin) Poll(sensor string) (json.RawMessage, error) {
	if !slices.ContainsFunc(p.plugin.Manifest().Sensors, func(s wire.SensorDef) bool { return s.Name == sensor }) {
		return nil, wire.Errorf(wire.CodeNotFound, "plugin %q has no sensor %q", p.plugin.Name(), sensor)
	}
	res := inProcessInstance{name: p.plugin.Name(), host: p.host}.Call(context.Background(), wire.Call{Method: sensor})
	if res.Error != nil {
		return nil, res.Error
	}
	return res.Payload, nil
}

// inProcess is a host.Transport that runs registry.Default in this process.
type inProcess struct{}

func (inProcess) Load(_ context.Context, spec host.LoadSpec) (host.Instance, error) {
	return inProcessInstance{name: spec.Name, host: spec.Host}, nil
}

type inProcessInstance struct {
	name string
	host host.Dispatcher
}

func (i inProcessInstance) Manifest() wire.Manifest { return registry.Default.Manifest() }

func (i inProcessInstance) Call(ctx context.Context, c wire.Call) wire.Result {
	return registry.Default.Dispatch(ctx, hostCaller(i), c)
}

func (inProcessInstance) Close(context.Context) error { return nil }

// hostCaller routes the plugin's host calls to the host's dispatcher.
type hostCaller inProcessInstance

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
