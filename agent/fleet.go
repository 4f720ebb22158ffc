// Package agent is depai's core and composition root: it wires
// configuration, models, tools, plugins, shared memory and the policy engine
// into agents, and runs their turns.
//
// A Fleet is the agents of one config file sharing one memory store, one
// policy engine and one audit log. Each Agent turns an Input (an operator
// message, a message from another agent, a sensor event, a schedule tick)
// into one turn through its bounded inbox: one model call with native tool
// calling per round; read-only tool calls of a round run in parallel,
// actuator and payment calls one after another in the model's order, every
// one through the policy; bounded by model calls, tool calls, tokens and wall
// time; stored durably before it is reported done. Operator commands (/help,
// /status, /stop …) bypass the model and the inbox, and /stop works while
// turns run. Failures end a turn with an EventError carrying a code.
//
// Open builds the parts it is not given (Options): the store, the models,
// the plugin transports, the event sink, and the in-process Go tools a
// program embedding depai adds. Environment variables are read by the
// caller (cmd/depai), never here: Options.Secrets resolves the names the
// config gives.
//
// Lock order: Fleet.mu, then Agent.mu, then Agent.histMu; the policy
// engine's locks are taken after all of these.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/recall"
	"github.com/depai/depai/sdk/wire"
)

// Store is the memory a fleet runs on: a memory.Store that can also be
// watched and keeps versioned facts. memory.DB is one.
type Store interface {
	memory.Store
	memory.Watcher
	memory.Facts
}

// ModelFactory connects one agent to its model endpoint.
type ModelFactory func(ctx context.Context, agent string, cfg config.Model) (llm.Model, error)

// Options are the parts of a fleet that do not come from its config file.
// Every field but DataDir is optional.
type Options struct {
	DataDir string // where memory, the recall index and the safety state live; created with mode 0700
	// CacheDir holds built plugins and compiled WASM code, which several
	// data dirs share. Default: host.DefaultCacheDir() (the user cache
	// directory's depai), or DataDir/cache where there is none.
	CacheDir string
	Logger   *slog.Logger // nil: discard

	// Store is the shared memory. Nil: a memory.DB opened in DataDir/memory
	// (and closed by Fleet.Close; a given Store is the caller's to close).
	Store Store
	// Models connects agents to their models. Nil: the OpenAI-compatible
	// adapter, with the API key from Secrets.
	Models ModelFactory
	// Transports start plugins, by transport kind (wire.TransportWASM,
	// wire.TransportProcess). Nil: NewTransports makes them.
	Transports map[string]host.Transport
	// NewTransports makes the transports when Transports is nil, with the
	// fleet's cache dir (CacheDir or its default) and logger:
	// transports.Default (package agent/transports) makes wazero's and
	// go-plugin's. Nil too: the fleet has no plugin transport, and a config
	// that names a plugin does not open. A transport is a func here, not
	// built in, so that a program that needs neither does not link wazero,
	// gRPC, protobuf and go-plugin, whose package initialisation every
	// start would pay (about 2 ms).
	NewTransports func(cacheDir string, log *slog.Logger) (map[string]host.Transport, error)
	// Tools are in-process Go tools, by agent name, for a program that
	// embeds depai: they are offered to the model and /call like any other
	// tool, and pass the same policy.
	Tools map[string][]tool.Tool
	// Events receives every event of every agent's turns and commands, as
	// they happen: the seam for a fleet-wide stream. It must not block.
	Events func(agent string, ev Event)
	// Tracer receives a span per turn (invoke_agent), model call (chat) and
	// tool call (execute_tool), with the OpenTelemetry GenAI attributes.
	// Nil: no spans.
	Tracer trace.TracerProvider
	// Metrics receives turns, model calls, tool calls and policy decisions
	// for GET /metrics (*metrics.Metrics of agent/metrics). Nil: nothing
	// is counted.
	Metrics Metrics
	// Mesh joins the fleet on NATS as the config's mesh: section says
	// (fleet_mesh.go). Nil: the fleet ends at this process.
	Mesh *MeshOptions
	// Secrets resolves the environment variable names the config gives
	// (model.api_key_env, plugin secrets). Nil: nothing resolves, so an
	// endpoint that needs a key fails at its first call.
	Secrets func(name string) (string, bool)
	// Wallets opens the wallet of an agent with wallet: in its config. Nil:
	// wallet.Open on the configured RPC.
	Wallets WalletFactory
}

// Metrics is what a fleet counts: turns, model and tool calls, policy
// decisions, commits, replication lag and plugin calls. *metrics.Metrics
// (agent/metrics, for GET /metrics) is the one depai has; it is an
// interface here so that a program embedding depai without metrics does
// not link Prometheus, whose package init every start paid (0.7 ms).
type Metrics interface {
	host.Observer
	Turn(agent, outcome string, d time.Duration, tokens int)
	ModelCall(agent, outcome string, d time.Duration)
	ToolCall(agent, tool, outcome string)
	Decision(agent, kind, verdict string)
	EStop(engaged func() bool)
	ReplicationLag(d time.Duration)
	Commit(c memory.CommitInfo)
}

// noMetrics counts nothing: Options.Metrics when none is given.
type noMetrics struct{}

func (noMetrics) PluginCall(string, string, string, time.Duration) {}
func (noMetrics) PluginRestarted(string)                           {}
func (noMetrics) PluginQuarantined(string)                         {}
func (noMetrics) Turn(string, string, time.Duration, int)          {}
func (noMetrics) ModelCall(string, string, time.Duration)          {}
func (noMetrics) ToolCall(string, string, string)                  {}
func (noMetrics) Decision(string, string, string)                  {}
func (noMetrics) EStop(func() bool)                                {}
func (noMetrics) ReplicationLag(time.Duration)                     {}
func (noMetrics) Commit(memory.CommitInfo)                         {}

// counting reports whether m counts anything (it is not noMetrics).
func counting(m Metrics) bool {
	_, none := m.(noMetrics)
	return !none
}

// Fleet is the agents of one config file and what they share.
type Fleet struct {
	file      *config.File
	log       *slog.Logger
	opts      Options
	store     Store
	ownsStore bool
	recall    *recall.Index
	audit     *policy.Log
	policy    *policy.Engine
	// quarantine keeps the plugins quarantined for a crash loop or an
	// unacknowledged stop across restarts (DataDir/quarantine.json).
	quarantine *host.Quarantine
	poses      poses
	mesh       *fleetMesh // nil: the mesh is off
	agents     []*Agent
	byName     map[string]*Agent
	payments   map[string]*payments // by agent name; see payments.go

	cacheDir   string
	transports map[string]host.Transport // shared by every agent's plugin host
	// ownsTransports: NewTransports made them, so Close closes them (the
	// WASM transport's compilation cache); Options.Transports are the
	// caller's.
	ownsTransports bool
	tracer         trace.Tracer // nil: no tracing, and no span or attribute is built

	bgCtx context.Context    // lives until Close: inboxes, schedules, wakes
	stop  context.CancelFunc // ends bgCtx

	// mu guards closing; bg counts the goroutines started through goBG,
	// which refuses new ones once Close began.
	mu      sync.Mutex
	closing bool
	bg      sync.WaitGroup
	// loading tracks plugin loaders, which Close does not wait out: a WASM
	// compile cannot be interrupted.
	loading sync.WaitGroup
}

// Open starts every agent in file. It returns as soon as the agents answer
// commands — the emergency stop works from then on — while plugins load in
// the background (WaitPlugins); a turn or tool call waits for its agent's
// plugins. A part that was started is closed again when a later one fails.
func Open(ctx context.Context, file *config.File, opts Options) (_ *Fleet, err error) {
	if len(file.Agents) == 0 {
		return nil, fmt.Errorf("agent: %s: no agents configured", file.Path)
	}
	if opts.DataDir == "" {
		return nil, errors.New("agent: Options.DataDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Secrets == nil {
		opts.Secrets = func(string) (string, bool) { return "", false }
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	if opts.CacheDir == "" {
		opts.CacheDir = cmp.Or(host.DefaultCacheDir(), filepath.Join(opts.DataDir, "cache"))
	}

	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f := &Fleet{file: file, log: opts.Logger, opts: opts, byName: map[string]*Agent{}, cacheDir: opts.CacheDir, bgCtx: bgCtx, stop: stop}
	if opts.Tracer != nil {
		f.tracer = opts.Tracer.Tracer("github.com/depai/depai/agent")
	}
	defer func() {
		if err != nil {
			_ = f.Close(context.WithoutCancel(ctx))
			err = fmt.Errorf("agent: %w", err)
		}
	}()
	if err := f.provision(ctx); err != nil {
		return nil, err
	}
	for i := range file.Agents {
		a, err := newAgent(ctx, f, file.Agents[i])
		if err != nil {
			return nil, fmt.Errorf("%s: agent %q: %w", file.Path, file.Agents[i].Name, err)
		}
		f.agents = append(f.agents, a)
		f.byName[a.Name()] = a
	}
	if err := f.joinMesh(ctx); err != nil {
		return nil, err
	}
	f.policy.OnStop(f.cancelTurns)
	f.policy.OnStop(f.stopActuators)
	f.opts.Metrics.EStop(f.Stopped)
	for _, a := range f.agents {
		a.start()
		f.loading.Go(func() { a.plugins.loadAll(bgCtx) })
	}
	f.startPayments()
	return f, nil
}

// wireTransports sets the fleet's plugin transports (Options.Transports,
// else Options.NewTransports) and checks that each plugin the config names
// has its transport, so a program that did not wire one fails at Open, not
// at the plugin's load in the background.
func (f *Fleet) wireTransports() error {
	f.transports = f.opts.Transports
	if f.transports == nil && f.opts.NewTransports != nil {
		t, err := f.opts.NewTransports(f.cacheDir, f.log)
		if err != nil {
			return fmt.Errorf("plugin transports: %w", err)
		}
		f.transports, f.ownsTransports = t, true
	}
	warm := map[string]bool{}
	for _, a := range f.file.Agents {
		for _, p := range a.Plugins {
			kind := cmp.Or(p.Transport, host.KindWASM)
			t := f.transports[kind]
			if t == nil {
				return fmt.Errorf("agent %q: plugin %q: no %s transport is wired (Options.Transports or Options.NewTransports; transports.Default has wasm and process)", a.Name, p.Name, kind)
			}
			if w, ok := t.(warmer); ok && !warm[kind] {
				warm[kind] = true
				f.goBG(w.Warm) // Close waits for it before it closes the transport
			}
		}
	}
	return nil
}

// warmer is a transport with set-up it can do before its first plugin
// loads (the process transport's launcher and kernel probe): a fleet whose
// config names a plugin of it starts that while the rest of the fleet is
// built.
type warmer interface{ Warm() }

// provision opens the shared parts: memory, the audit log, the policy
// engine, recall and the plugin transports. The store opens in the
// background while the parts that do not read it (the safety state, the
// quarantine, the payment ledgers and wallets, the transports) are set up:
// opening the store is most of a start (badger creates or replays its
// logs, each with its syncs). The safety state is known before any part
// that can run a tool exists.
func (f *Fleet) provision(ctx context.Context) (err error) {
	waitStore := f.openStore(ctx)
	defer func() {
		// Whatever failed, the store is waited for and kept, so that Close
		// closes it.
		if serr := waitStore(); err == nil {
			err = serr
		}
	}()
	state, err := policy.OpenState(f.opts.DataDir)
	if err != nil {
		return err
	}
	if why := state.Broken(); why != "" {
		f.log.Error("emergency stop engaged at start", "reason", why)
	}
	if f.quarantine, err = openQuarantine(f.opts.DataDir, f.log); err != nil {
		return err
	}
	rules := map[string]policy.Rules{}
	var timeout config.Duration
	for _, a := range f.file.Agents {
		rules[a.Name] = policy.RulesOf(a)
		timeout = max(timeout, a.Safety.ApprovalTimeout)
	}
	if err := f.openPayments(ctx, rules); err != nil {
		return err
	}
	if err := f.wireTransports(); err != nil {
		return err
	}
	if err := waitStore(); err != nil {
		return err
	}
	audit, err := policy.OpenLog(ctx, f.store)
	if err != nil {
		return err
	}
	f.audit = audit
	f.policy, err = policy.New(ctx, policy.Config{Log: audit, State: state, Agents: rules, ApprovalTimeout: timeout.Std(), Poses: f.poses.get, Logger: f.log,
		OnDecision: func(a policy.Action, d policy.Decision) {
			f.opts.Metrics.Decision(a.Agent, string(a.Kind), string(d.Verdict))
		}})
	if err != nil {
		return err
	}
	f.recall, err = openRecall(ctx, f.file, f.store, f.opts.DataDir, f.opts.Secrets, f.log)
	return err
}

// openStore starts opening the fleet's memory (Options.Store, if given,
// is used as it is) and returns the wait for it, which sets f.store once
// it is open; the wait may be called more than once.
func (f *Fleet) openStore(ctx context.Context) func() error {
	if f.opts.Store != nil {
		f.store = f.opts.Store
		return func() error { return nil }
	}
	cfg := memory.Config{Dir: filepath.Join(f.opts.DataDir, "memory"), Profile: memoryProfile(f.file), MinFreeBytes: memoryMinFree(f.file), Logger: f.log}
	if counting(f.opts.Metrics) {
		cfg.OnCommit = f.opts.Metrics.Commit
	}
	var db *memory.DB
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		db, err = memory.Open(ctx, cfg)
	}()
	return sync.OnceValue(func() error {
		<-done
		if err != nil {
			return err
		}
		f.store, f.ownsStore = db, true
		return nil
	})
}

// noSpan stands in for a span when tracing is off; held as the interface,
// so that returning it does not box a new copy each time.
var noSpan trace.Span = noop.Span{}

// startSpan starts the span "op name" with the attributes attrs builds, or
// returns ctx and a span that records nothing when the fleet has no
// tracer: the turn path then pays neither for the span, nor for its name,
// nor for its attributes.
func (f *Fleet) startSpan(ctx context.Context, op, name string, kind trace.SpanKind, attrs func() []attribute.KeyValue) (context.Context, trace.Span) {
	if f.tracer == nil {
		return ctx, noSpan
	}
	return f.tracer.Start(ctx, op+" "+name, trace.WithSpanKind(kind), trace.WithAttributes(attrs()...))
}

// memoryProfile picks the store profile: the leanest any agent asks for,
// since the store is shared.
func memoryProfile(file *config.File) string {
	for _, a := range file.Agents {
		if a.Memory.Profile == config.ProfileLowMem {
			return memory.ProfileLowMem
		}
	}
	return memory.ProfileDefault
}

// memoryMinFree is the store's free-space threshold: memory.min_free, which
// config makes the agents agree on; 0, the profile's default, when unset.
func memoryMinFree(file *config.File) int64 {
	for _, a := range file.Agents {
		if a.Memory.MinFree != 0 {
			return int64(a.Memory.MinFree)
		}
	}
	return 0
}

// goBG runs fn in a goroutine that Close waits for, unless Close has begun:
// then fn does not run and goBG reports false.
func (f *Fleet) goBG(fn func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.bg.Go(fn)
	return true
}

// Agents lists the agents in config order.
func (f *Fleet) Agents() []*Agent { return append([]*Agent(nil), f.agents...) }

// Agent returns the named agent.
func (f *Fleet) Agent(name string) (*Agent, error) {
	if a, ok := f.byName[name]; ok {
		return a, nil
	}
	names := make([]string, len(f.agents))
	for i, a := range f.agents {
		names[i] = a.Name()
	}
	return nil, fmt.Errorf("no agent %q; agents: %s", name, strings.Join(names, ", "))
}

// Policy is the fleet's policy engine: the e-stop, approvals, decisions.
func (f *Fleet) Policy() *policy.Engine { return f.policy }

// WaitPlugins waits until every agent has tried to load its plugins and
// returns the failures, each naming the agent and the plugin. A plugin that
// fails to load leaves its agent running without it.
func (f *Fleet) WaitPlugins(ctx context.Context) error {
	var errs []error
	for _, a := range f.agents {
		if err := a.plugins.wait(ctx); err != nil {
			return err
		}
		for _, err := range a.plugins.failures() {
			errs = append(errs, fmt.Errorf("agent %s: %w", a.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Stopped reports whether the emergency stop is engaged.
func (f *Fleet) Stopped() bool { return f.policy != nil && f.policy.Stopped() }

// stopActuators is the e-stop's hook that reaches the machines: every
// agent's actuator plugins and in-process stoppers (tool.Stopper) are told
// to stop at once, in parallel, and each answer is on record. A plugin that
// does not acknowledge is quarantined by its host, and its tools are
// dropped from the agent; so is an in-process tool that does not.
func (f *Fleet) stopActuators(ctx context.Context) {
	var wg sync.WaitGroup
	for _, a := range f.agents {
		wg.Go(func() { f.recordToolStops(ctx, a, wire.StopCommanded, a.stopTools(ctx)) })
		wg.Go(func() {
			for _, r := range a.plugins.host.StopAll(ctx) {
				e := policy.Entry{Agent: a.Name(), Principal: policy.Principal{Kind: policy.PrincipalSystem}, Kind: policy.ActionHost,
					Action: "actuator.stop", Target: r.Plugin, Phase: policy.PhaseOutcome, Error: r.Err,
					Reason: fmt.Sprintf("acknowledged=%v in %v", r.Acked, r.Took.Round(time.Microsecond))}
				if r.Quarantined { // its tools left the agent with it (onQuarantine)
					e.Reason += "; quarantined: unloaded until cleared"
				}
				if _, err := f.audit.Write(context.WithoutCancel(ctx), e); err != nil {
					f.log.Error("audit: actuator stop not recorded", "plugin", r.Plugin, "err", err)
				}
				if !r.Acked {
					f.log.Error("actuator plugin did not acknowledge the emergency stop", "agent", a.Name(), "plugin", r.Plugin, "err", r.Err, "quarantined", r.Quarantined)
				}
			}
		})
	}
	wg.Wait()
}

// cancelTurns is the e-stop's hook: every running turn of every agent ends.
func (f *Fleet) cancelTurns(context.Context) {
	for _, a := range f.agents {
		a.cancelTurns()
	}
}

// Close stops the inboxes, schedules and wakes, cancels running turns,
// unloads plugins and closes what Open opened. It may be called on a fleet
// whose Open failed half way, and more than once.
func (f *Fleet) Close(ctx context.Context) error {
	f.mu.Lock()
	already := f.closing
	f.closing = true
	f.mu.Unlock()
	if already {
		return nil
	}
	f.stop()
	f.cancelTurns(ctx)
	// In-process actuators stop before anything else goes, as plugins do
	// when their hosts close below.
	f.stopToolsForClose(ctx)
	var errs []error
	if !waitCtx(ctx, &f.bg) {
		errs = append(errs, fmt.Errorf("turns still running: %w", ctx.Err()))
	}
	// A plugin still compiling is not worth delaying shutdown for: its
	// loader sees the cancelled context and unloads what it finishes.
	if !waitCtx(ctx, &f.loading) {
		f.log.Warn("shutting down while plugins are still loading")
	}
	f.leaveMesh()
	for _, a := range f.agents {
		if err := a.plugins.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent %s: plugins: %w", a.Name(), err))
		}
		if c, ok := a.model.(io.Closer); ok { // the model client's idle connections
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("agent %s: model: %w", a.Name(), err))
			}
		}
	}
	if f.ownsTransports {
		for kind, t := range f.transports {
			if c, ok := t.(interface{ Close(context.Context) error }); ok {
				if err := c.Close(ctx); err != nil {
					errs = append(errs, fmt.Errorf("%s transport: %w", kind, err))
				}
			}
		}
	}
	if err := f.closePayments(); err != nil {
		errs = append(errs, fmt.Errorf("payments: %w", err))
	}
	// Memory is closed whatever happened above: acknowledged writes are
	// already durable, and a clean close spares the next start a replay.
	if f.recall != nil {
		if err := f.recall.Close(); err != nil {
			errs = append(errs, fmt.Errorf("recall: %w", err))
		}
	}
	if f.audit != nil {
		if err := f.audit.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if f.ownsStore && f.store != nil {
		if err := f.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("memory: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: close: %w", err)
	}
	return nil
}

// waitCtx waits for wg, or until ctx ends; it reports whether wg finished.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
