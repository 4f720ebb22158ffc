package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// Transport kinds, as sdk/wire defines them.
const (
	KindWASM    = wire.TransportWASM
	KindProcess = wire.TransportProcess
)

// Config configures a Host. Every field is optional; a capability whose
// backing is missing (no Store, no Emit) answers unavailable.
type Config struct {
	// Transports start plugins, by kind (KindWASM, KindProcess).
	Transports map[string]Transport
	// Agent is on whose behalf the plugins act: Action.Agent of what the
	// Gate is asked.
	Agent string
	// Gate decides every host call with a side effect — memory.put,
	// http.fetch, emit, pay.* — after the grants allowed it, and audits it;
	// a refusal reaches the plugin as code denied with the Gate's reason. A
	// Gate that is also a DenialAuditor audits the host's own denials too.
	// Nil allows everything the grants allow (tests, depai plugin test).
	// The host writes no audit record itself.
	Gate policy.Gate
	// Rates bound what each plugin can make the host do.
	Rates Rates
	// Store backs memory.get/put/query.
	Store memory.Store
	// Payments is the agent's wallet behind pay.quote, pay.execute and
	// x402 in http.fetch (see Payments). Nil: pay.* answer unavailable and
	// a 402 reaches the plugin as is.
	Payments *Payments
	// Logger receives plugin log lines (tagged with the plugin's name) and,
	// without a DenialAuditor, coalesced denials. Nil: slog.Default().
	Logger *slog.Logger
	// Emit receives what plugins publish on granted topics. An error means
	// the event was dropped; the plugin's sdk.Emit returns it (code
	// unavailable, retryable).
	Emit func(plugin, topic string, payload json.RawMessage) error
	// OnReading receives each sensor poll's result (or error). Nil: sensors
	// are not polled.
	OnReading func(plugin, sensor string, payload json.RawMessage, err error)
	// Signer signs for plugins granted sign (wire.HostSign) with the
	// agent's identity key. Nil: identity.sign is unavailable.
	Signer Signer
	// HTTPClient's Transport carries http.fetch; its redirect policy and
	// timeout are replaced by the plugin's allowlist and limits. Nil: a
	// clone of http.DefaultTransport.
	HTTPClient *http.Client
	// AuditNamespace is where the scoped memory store records the denials
	// it decides itself (a memory.get of a record outside the grants).
	// Default "audit".
	AuditNamespace string
	// MaxQueryRecords caps one memory.query. Default 1000.
	MaxQueryRecords int
	// Now is the clock behind the clock method. Nil: time.Now.
	Now func() time.Time
	// InitTimeout bounds a plugin's own start-up — a WASM module's
	// _initialize (the Go runtime and every init()) and describe, after the
	// host compiled it: a plugin whose init() never returns fails its load
	// at this deadline and holds up nothing else. Compilation is the host's
	// work and is not counted. Default 30s.
	InitTimeout time.Duration
	// PinDir receives a private copy of each pinned artifact once its
	// SHA-256 is verified, and the transport runs that copy — so the bytes
	// that run (and that a process plugin restarts from) are the bytes
	// that were checked, whatever happens to the original file. Its mode
	// is set to 0700. Empty: the user cache directory's depai/pinned.
	PinDir string
	// Quarantine keeps quarantines across restarts: a plugin in it is
	// refused by Load until ClearQuarantine. Nil: quarantines last as long
	// as the Host.
	Quarantine *Quarantine
	// OnQuarantine hears of each plugin the host quarantines (a stop not
	// acknowledged, a crash loop), after it left the host's plugins: the
	// agent drops its tools and audits it. It must not block.
	OnQuarantine func(plugin, reason string)
	// Observer is told of every call into a plugin, restart and quarantine
	// (observe.go). Nil: nobody is.
	Observer Observer
}

// PluginSpec is one plugin as the agent config describes it.
type PluginSpec struct {
	Name string // unique within the host; the Source of its tools
	Path string // .wasm module or native executable
	// Kind is KindWASM, KindProcess or another key of Config.Transports.
	// Empty loads a WASM module; a native executable must say KindProcess.
	Kind string
	// SHA256, when set, pins the artifact: a file with another digest is
	// refused before anything of it runs.
	SHA256  string
	Grants  wire.Capabilities
	Config  map[string]string // values for granted config keys
	Secrets map[string]string // resolved values for granted secret names
	Limits  Limits
	// UnconfinedOK lists confinement features (Feature*) a process plugin may
	// run without where the kernel lacks them.
	UnconfinedOK []string
}

// Host loads plugins and serves their host calls under one policy engine.
// It is safe for concurrent use.
type Host struct {
	cfg    Config
	logger *slog.Logger
	http   *http.Client

	mu      sync.RWMutex
	plugins map[string]*Plugin
	status  map[string]*status // every plugin Load was asked for, until Unload
	// grants are the policy state the dispatcher checks, by plugin name;
	// present from just before a plugin starts until it is unloaded.
	grants map[string]*grant
	act    actuation // the stop contract: heartbeats, quarantine
}

var _ Dispatcher = (*Host)(nil)

// New returns a Host.
func New(cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AuditNamespace == "" {
		cfg.AuditNamespace = "audit"
	}
	if cfg.MaxQueryRecords <= 0 {
		cfg.MaxQueryRecords = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = 30 * time.Second
	}
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Host{cfg: cfg, logger: cfg.Logger, http: base, plugins: map[string]*Plugin{}, grants: map[string]*grant{}, status: map[string]*status{}}
}

// State is where a plugin is in its life.
type State string

// States.
const (
	StateLoading State = "loading"
	StateLoaded  State = "loaded"
	StateFailed  State = "failed" // its last load failed; Status.Err says why
)

// Status is one plugin the host was asked to load.
type Status struct {
	Name   string
	State  State
	Err    error   // why it failed
	Plugin *Plugin // when loaded
	Since  time.Time
}

// status is a plugin's State, with a channel closed when it leaves loading.
type status struct {
	Status
	settled chan struct{}
}

// Status lists every plugin the host was asked to load — loading, loaded
// or failed — by name. Plugins load concurrently; a plugin still loading
// holds up only the callers that Await it.
func (h *Host) Status() []Status {
	h.mu.RLock()
	out := make([]Status, 0, len(h.status))
	for _, s := range h.status {
		out = append(out, s.Status)
	}
	h.mu.RUnlock()
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Await waits until the named plugin has loaded or failed, or ctx ends, so
// that a call of one plugin's tool waits for that plugin alone.
func (h *Host) Await(ctx context.Context, name string) (*Plugin, error) {
	h.mu.RLock()
	s := h.status[name]
	h.mu.RUnlock()
	if s == nil {
		return nil, fmt.Errorf("plugin %q: not loaded", name)
	}
	select {
	case <-s.settled:
	case <-ctx.Done():
		return nil, fmt.Errorf("plugin %q is still loading: %w", name, ctx.Err())
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if s := h.status[name]; s != nil && s.State == StateLoaded {
		return s.Plugin, nil
	} else if s != nil && s.State == StateFailed {
		return nil, s.Err
	}
	return nil, fmt.Errorf("plugin %q: not loaded", name)
}

// Plugin is one loaded plugin.
type Plugin struct {
	spec     PluginSpec
	inst     Instance
	manifest wire.Manifest
	tools    []tool.Tool
	stop     context.CancelFunc // ends sensor polling
	polling  sync.WaitGroup
	obs      Observer // Config.Observer; nil: none
}

// Name is the plugin's name in the agent config.
func (p *Plugin) Name() string { return p.spec.Name }

// Spec is what the plugin was loaded from.
func (p *Plugin) Spec() PluginSpec { return p.spec }

// Manifest is what the plugin says about itself.
func (p *Plugin) Manifest() wire.Manifest { return p.manifest }

// Instance is the running plugin as its transport serves it, for
// transport-specific questions (process.PID).
func (p *Plugin) Instance() Instance { return p.inst }

// Confinement says what the plugin's transport enforces on it, and which
// confinement features the kernel lacked (allowed by unconfined_ok).
func (p *Plugin) Confinement() Confinement {
	if c, ok := p.inst.(Confined); ok {
		return c.Confinement()
	}
	return Confinement{}
}

// Tools are the plugin's tools, named by ToolName; each Spec().Source is
// the plugin's name.
func (p *Plugin) Tools() []tool.Tool { return slices.Clone(p.tools) }

// Tool returns the tool the manifest declares as declared, whatever name
// ToolName gave it.
func (p *Plugin) Tool(declared string) (tool.Tool, bool) {
	for _, t := range p.tools {
		if t.(*pluginTool).declared == declared {
			return t, true
		}
	}
	return nil, false
}

// ErrLoading is Load's error for a plugin another Load is starting.
var ErrLoading = errors.New("already loading")

// Load starts a plugin and checks it against its grants. On any failure —
// unreadable or unpinned file, unknown kind, wrong ABI, bad manifest,
// requested capabilities not granted — nothing stays running and the error
// names the plugin and the reason.
func (h *Host) Load(ctx context.Context, spec PluginSpec) (*Plugin, error) {
	h.mu.Lock()
	if _, taken := h.plugins[spec.Name]; taken {
		h.mu.Unlock()
		return nil, fmt.Errorf("plugin %q: already loaded", spec.Name)
	}
	if _, starting := h.grants[spec.Name]; starting {
		h.mu.Unlock()
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, ErrLoading)
	}
	if err := h.quarantinedErr(spec.Name); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	g, err := h.newGrant(spec)
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	h.grants[spec.Name] = g
	st := &status{Status: Status{Name: spec.Name, State: StateLoading, Since: time.Now()}, settled: make(chan struct{})}
	h.status[spec.Name] = st
	h.mu.Unlock()

	p, err := h.start(ctx, spec)
	h.mu.Lock()
	defer h.mu.Unlock()
	defer close(st.settled)
	if err != nil {
		delete(h.grants, spec.Name)
		st.Status = Status{Name: spec.Name, State: StateFailed, Err: err, Since: time.Now()}
		return nil, err
	}
	h.plugins[spec.Name] = p
	st.Status = Status{Name: spec.Name, State: StateLoaded, Plugin: p, Since: time.Now()}
	h.poll(p)
	h.arm(p)
	return p, nil
}

// start loads spec through its transport and checks the manifest.
func (h *Host) start(ctx context.Context, spec PluginSpec) (*Plugin, error) {
	if spec.Name == "" {
		return nil, errors.New("plugin: spec has no name")
	}
	kind, path, err := h.checkArtifact(spec)
	if err != nil {
		return nil, err
	}
	t := h.cfg.Transports[kind]
	if t == nil {
		return nil, fmt.Errorf("plugin %q: no %s transport configured", spec.Name, kind)
	}
	// self is the Plugin the transport's give-up concerns, set once Load has it.
	var self atomic.Pointer[Plugin]
	inst, err := t.Load(ctx, LoadSpec{Name: spec.Name, Path: path, Grants: spec.Grants, Limits: spec.Limits, Host: h, UnconfinedOK: spec.UnconfinedOK, InitTimeout: h.cfg.InitTimeout,
		Restarted: h.restarted(spec.Name), OnGiveUp: func(err error) { h.crashLooped(spec.Name, self.Load(), err) }})
	if err != nil {
		return nil, err
	}
	p := &Plugin{spec: spec, inst: inst, manifest: inst.Manifest(), obs: h.cfg.Observer}
	self.Store(p)
	if err := p.check(); err != nil {
		_ = inst.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	h.logger.Info("plugin loaded", "plugin", spec.Name, "kind", kind, "version", p.manifest.Version, "tools", len(p.tools), "sensors", len(p.manifest.Sensors))
	return p, nil
}

// checkArtifact infers the plugin's kind from the file's magic and, for a
// pinned plugin, verifies the digest and returns the path of the private
// copy the transport must load instead of spec.Path.
func (h *Host) checkArtifact(spec PluginSpec) (kind, path string, err error) {
	var head []byte
	path = spec.Path
	if spec.SHA256 == "" {
		f, err := os.Open(spec.Path)
		if err != nil {
			return "", "", fmt.Errorf("plugin %q: %w", spec.Name, err)
		}
		head = make([]byte, 4)
		n, _ := io.ReadFull(f, head)
		head = head[:n]
		f.Close()
	} else {
		// Read once: these bytes are hashed, then copied to where only
		// this agent can write, and only the copy is ever run.
		code, err := os.ReadFile(spec.Path)
		if err != nil {
			return "", "", fmt.Errorf("plugin %q: %w", spec.Name, err)
		}
		sum := sha256.Sum256(code)
		got := hex.EncodeToString(sum[:])
		if !strings.EqualFold(got, spec.SHA256) {
			return "", "", fmt.Errorf("plugin %q: %s has SHA-256 %s but the config pins %s", spec.Name, spec.Path, got, spec.SHA256)
		}
		if path, err = h.pin(got, code); err != nil {
			return "", "", fmt.Errorf("plugin %q: %w", spec.Name, err)
		}
		head = code[:min(4, len(code))]
	}
	kind = KindOf(head)
	if spec.Kind != "" {
		// Other kinds (an in-process test transport) have no file format.
		if kind != "" && kind != spec.Kind && (spec.Kind == KindWASM || spec.Kind == KindProcess) {
			return "", "", fmt.Errorf("plugin %q: the config says kind %s but %s is a %s plugin", spec.Name, spec.Kind, spec.Path, kind)
		}
		return spec.Kind, path, nil
	}
	switch kind {
	case "":
		return "", "", fmt.Errorf("plugin %q: %s is neither a WASM module nor a native executable (first bytes %q)", spec.Name, spec.Path, head)
	case KindProcess:
		return "", "", fmt.Errorf("plugin %q: %s is a native executable; a process plugin must be asked for by its kind (transport: process in the agent config), never inferred from the file", spec.Name, spec.Path)
	}
	return kind, path, nil
}

// pin writes verified bytes to PinDir under their digest, atomically.
func (h *Host) pin(digest string, code []byte) (string, error) {
	dir := h.cfg.PinDir
	if dir == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("pin: no cache directory: %w", err)
		}
		dir = filepath.Join(uc, "depai", "pinned")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	// What runs from here must not be writable by anyone else.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".pin-*")
	if err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(code)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", fmt.Errorf("pin: %w", werr)
	}
	// Executable, for process plugins; nobody else may read or write it.
	if err := os.Chmod(tmp.Name(), 0o700); err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	path := filepath.Join(dir, digest)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	return path, nil
}

// Transport is the host's transport of this kind, or nil.
func (h *Host) Transport(kind string) Transport { return h.cfg.Transports[kind] }

// DefaultCacheDir is where built plugins, compiled WASM code and pinned
// artifacts are kept unless configured otherwise: the user cache
// directory's depai, shared by every agent and data dir of the user, so a
// new data dir does not rebuild or recompile anything. "" when the system
// has no user cache directory.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "depai")
}

// KindOf tells a plugin's kind from the first bytes of its file; see wire.KindOf.
func KindOf(head []byte) string { return wire.KindOf(head) }

// Plugin returns the loaded plugin with this name.
func (h *Host) Plugin(name string) (*Plugin, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	p, ok := h.plugins[name]
	return p, ok
}

// Plugins lists the loaded plugins by name.
func (h *Host) Plugins() []*Plugin {
	h.mu.RLock()
	ps := make([]*Plugin, 0, len(h.plugins))
	for _, p := range h.plugins {
		ps = append(ps, p)
	}
	h.mu.RUnlock()
	slices.SortFunc(ps, func(a, b *Plugin) int { return strings.Compare(a.spec.Name, b.spec.Name) })
	return ps
}

// Unload stops a plugin: its actuators are told to stop (wire.StopUnload),
// its sensors and heartbeats stop, calls in flight end with an error, and
// its grants are revoked.
func (h *Host) Unload(ctx context.Context, name string) error {
	h.mu.Lock()
	p, ok := h.plugins[name]
	var st Status // a copy: Load updates the entry under h.mu
	if s := h.status[name]; s != nil {
		st = s.Status
	}
	if ok {
		delete(h.plugins, name)
		delete(h.grants, name)
		delete(h.status, name)
	}
	h.mu.Unlock()
	if !ok {
		switch st.State {
		case StateLoading:
			return fmt.Errorf("plugin %q is still loading (since %s)", name, st.Since.Format(time.TimeOnly))
		case StateFailed:
			return fmt.Errorf("plugin %q: not loaded: %w", name, st.Err)
		}
		return fmt.Errorf("plugin %q: not loaded", name)
	}
	h.logger.Info("plugin unloaded", "plugin", name)
	h.stopUnloading(ctx, p)
	return p.close(ctx)
}

// Reload starts the plugin afresh from its spec (a rebuilt file, say) and
// swaps it in. If the new one fails to load, the old one keeps running and
// the error says why. The caller replaces the old plugin's tools with the
// new one's.
func (h *Host) Reload(ctx context.Context, name string) (*Plugin, error) {
	old, ok := h.Plugin(name)
	if !ok {
		return nil, fmt.Errorf("plugin %q: not loaded", name)
	}
	p, err := h.start(ctx, old.spec)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	h.mu.Lock()
	if h.plugins[name] != old {
		h.mu.Unlock()
		_ = p.close(ctx)
		return nil, fmt.Errorf("plugin %q: unloaded or reloaded during reload", name)
	}
	h.plugins[name] = p
	if st := h.status[name]; st != nil {
		st.Plugin, st.Since = p, time.Now()
	}
	h.poll(p)
	h.arm(p)
	h.mu.Unlock()
	h.logger.Info("plugin reloaded", "plugin", name)
	h.stopUnloading(ctx, old)
	return p, old.close(ctx)
}

// Close stops every actuator plugin at once (wire.StopShutdown), then
// unloads every plugin.
func (h *Host) Close(ctx context.Context) error {
	ctx = h.stopForClose(ctx)
	var errs []error
	for _, p := range h.Plugins() {
		errs = append(errs, h.Unload(ctx, p.spec.Name))
	}
	h.waitQuarantined()
	return errors.Join(errs...)
}

func (p *Plugin) close(ctx context.Context) error {
	if p.stop != nil {
		p.stop()
	}
	err := p.inst.Close(ctx)
	p.polling.Wait()
	if err != nil {
		return fmt.Errorf("plugin %q: close: %w", p.spec.Name, err)
	}
	return nil
}
