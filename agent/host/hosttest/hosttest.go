// Package hosttest runs a plugin's real build in the agent's real host, for
// the plugin's own unit tests: the package is built with agent/host/build
// (to WASM by default, cached by content hash) and loaded with the same
// transport, grants, policy dispatcher, sandbox, rate limits and memory
// store (badger, in a temporary directory) that an agent uses. A test
// therefore meets exactly the rules production does: no files, a fixed
// clock unless granted, fresh per-instance state, input validation.
//
//	func TestGreet(t *testing.T) {
//		p := hosttest.New(t) // builds and loads the package in "."
//		out, err := hosttest.CallAs[GreetOut](p, "hello.greet", GreetIn{Name: "Ada"})
//		…
//	}
//
// It lives beside the host, not in sdk/: the SDK a plugin links imports
// nothing of the agent.
package hosttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// Option adjusts how the plugin is built and loaded.
type Option func(*options)

type options struct {
	dir             string
	kind            string
	grants          *wire.Capabilities
	config, secrets map[string]string
	logger          *slog.Logger
	limits          host.Limits
	cacheDir        string
	signer          host.Signer
	// transport and path, when set, load path through transport instead of
	// building dir.
	transport host.Transport
	path      string
}

// Dir is the plugin's package directory. Default ".", the package under test.
func Dir(d string) Option { return func(o *options) { o.dir = d } }

// Transport builds and loads the plugin for host.KindWASM (the default) or
// host.KindProcess (native, confined by the kernel as in production).
func Transport(kind string) Option { return func(o *options) { o.kind = kind } }

// Grants sets what the plugin is granted. Without it the plugin is granted
// exactly what it requests.
func Grants(c wire.Capabilities) Option { return func(o *options) { o.grants = &c } }

// Config sets the plugin's config values (for granted keys).
func Config(kv map[string]string) Option { return func(o *options) { o.config = kv } }

// Secrets sets the plugin's secret values (for granted names).
func Secrets(kv map[string]string) Option { return func(o *options) { o.secrets = kv } }

// Logger receives the plugin's log lines and output. Default: discarded.
func Logger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Limits sets the plugin's limits.
func Limits(l host.Limits) Option { return func(o *options) { o.limits = l } }

// Through loads the artifact at path through t, registered as kind,
// instead of building the package: for a transport of the test's own (an
// in-process one, as sdk/plugintest's).
func Through(kind string, t host.Transport, path string) Option {
	return func(o *options) { o.kind, o.transport, o.path = kind, t, path }
}

// Signer signs identity.sign calls as the agent's key would. Default: none,
// and identity.sign is unavailable.
func Signer(s host.Signer) Option { return func(o *options) { o.signer = s } }

// CacheDir holds built artifacts and compiled WASM code. Default: the user
// cache directory's depai, shared with every agent and test on the machine.
func CacheDir(d string) Option { return func(o *options) { o.cacheDir = d } }

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

// New builds and loads the plugin. A build or load error fails the test.
func New(t testing.TB, opts ...Option) *Plugin {
	t.Helper()
	p, err := Load(t, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Load is New that returns the load error, to test how a plugin is refused.
// A build error still fails the test.
func Load(t testing.TB, opts ...Option) (*Plugin, error) {
	t.Helper()
	o := options{dir: ".", kind: host.KindWASM, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), cacheDir: host.DefaultCacheDir()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cacheDir == "" {
		o.cacheDir = t.TempDir()
	}
	path := o.path
	if o.transport == nil {
		target := build.WASM
		if o.kind == host.KindProcess {
			target = build.Native
		}
		res, err := build.Plugin(context.Background(), build.Options{Dir: o.dir, Target: target, CacheDir: filepath.Join(o.cacheDir, "plugins")})
		if err != nil {
			t.Fatalf("hosttest: %v", err)
		}
		path = res.Path
	}
	wt, err := wasm.New(wasm.Config{CacheDir: filepath.Join(o.cacheDir, "wasm"), Logger: o.logger})
	if err != nil {
		t.Fatalf("hosttest: %v", err)
	}
	store, err := memory.Open(context.Background(), memory.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("hosttest: %v", err)
	}
	pt := &Plugin{store: store}
	transports := map[string]host.Transport{host.KindWASM: wt, host.KindProcess: process.New(process.Config{Logger: o.logger})}
	if o.transport != nil {
		transports[o.kind] = o.transport
	}
	h := host.New(host.Config{
		Transports: transports,
		Store:      store,
		Logger:     o.logger,
		PinDir:     filepath.Join(o.cacheDir, "pinned"),
		Signer:     o.signer,
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
		_ = wt.Close(context.Background())
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	// The manifest first, straight from the transport: the plugin's name,
	// and what it requests when the test grants nothing explicitly.
	tr := h.Transport(o.kind)
	inst, err := tr.Load(context.Background(), host.LoadSpec{Name: "hosttest", Path: path, Limits: o.limits, Host: refuse{}})
	if err != nil {
		return nil, err
	}
	m := inst.Manifest()
	_ = inst.Close(context.Background())
	spec := host.PluginSpec{Name: m.Name, Path: path, Kind: o.kind, Grants: m.Requests, Config: o.config, Secrets: o.secrets, Limits: o.limits}
	if spec.Name == "" {
		spec.Name = "plugin"
	}
	if o.grants != nil {
		spec.Grants = *o.grants
	}
	pt.plugin, err = h.Load(context.Background(), spec)
	if err != nil {
		return nil, err
	}
	return pt, nil
}

// refuse answers the host calls of the describe-only load.
type refuse struct{}

func (refuse) HostCall(context.Context, string, string, []byte) ([]byte, *wire.Error) {
	return nil, wire.Errorf(wire.CodeUnavailable, "hosttest: reading the manifest")
}

// Host is the host the plugin runs in.
func (p *Plugin) Host() *host.Host { return p.host }

// Plugin is the loaded plugin.
func (p *Plugin) Plugin() *host.Plugin { return p.plugin }

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
// the result comes back as JSON. name is the tool's declared name. Errors
// are *wire.Error values.
func (p *Plugin) Call(name string, in any) (json.RawMessage, error) {
	return p.CallContext(context.Background(), name, in)
}

// CallContext is Call with a context.
func (p *Plugin) CallContext(ctx context.Context, name string, in any) (json.RawMessage, error) {
	args, ok := in.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("hosttest: encode arguments for %s: %w", name, err)
		}
		args = b
	}
	t, ok := p.plugin.Tool(name)
	if !ok {
		return nil, wire.Errorf(wire.CodeNotFound, "plugin %q has no tool %q", p.plugin.Name(), name)
	}
	return t.Call(ctx, args)
}

// CallAs is Call decoding the result into Out.
func CallAs[Out any](p *Plugin, name string, in any) (Out, error) {
	var out Out
	b, err := p.Call(name, in)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("hosttest: decode %s result %s: %w", name, b, err)
	}
	return out, nil
}

// Poll reads a sensor once, as the host's poller would.
func (p *Plugin) Poll(sensor string) (json.RawMessage, error) {
	if !slices.ContainsFunc(p.plugin.Manifest().Sensors, func(s wire.SensorDef) bool { return s.Name == sensor }) {
		return nil, wire.Errorf(wire.CodeNotFound, "plugin %q has no sensor %q", p.plugin.Name(), sensor)
	}
	res := p.plugin.Instance().Call(context.Background(), wire.Call{Method: sensor, CallID: "hosttest-poll"})
	if res.Error != nil {
		return nil, res.Error
	}
	return res.Payload, nil
}

// Unload unloads the plugin before the test ends: its run hook stops, and
// the next load in the same test binary starts from a clean run.
func (p *Plugin) Unload() error { return p.host.Unload(context.Background(), p.plugin.Name()) }
