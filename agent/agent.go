// Package agent is depai's core: it wires configuration, the model, tools,
// plugins and shared memory into agents, and runs their turns.
//
// A Fleet is the agents of one config file sharing one memory store. Each
// Agent turns an Input (an operator message or command, a message from
// another agent, a sensor event, a schedule tick) into one turn: one model
// call with native tool calling per round, tool calls run through the safety
// gate (in parallel within a round), bounded by model calls, tool calls,
// tokens and wall time, and stored in memory whole. Operator commands
// (/help, /status, /stop …) bypass the model and work without one.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/memory/recall"
)

// Options are the parts of a fleet that do not come from its config file.
type Options struct {
	DataDir string // where memory lives; created with mode 0700
	// CacheDir holds built plugins and compiled WASM code, which several
	// data dirs share. Default: host.DefaultCacheDir() (the user cache
	// directory's depai), or DataDir/cache where there is none.
	CacheDir string
	Logger   *slog.Logger // nil: discard
}

// Fleet is the agents of one config file and what they share.
type Fleet struct {
	file   *config.File
	log    *slog.Logger
	store  *memory.DB
	recall *recall.Index
	agents []*Agent
	byName map[string]*Agent

	cacheDir   string
	transports map[string]host.Transport // shared by every agent's plugin host

	estop atomic.Bool // the emergency stop: engaged by /stop, released by /resume

	bgCtx context.Context    // lives until Close: schedules and event turns
	stop  context.CancelFunc // ends bgCtx
	bg    sync.WaitGroup     // schedules, wakes and event turns
	// loading tracks the agents' plugin loaders, which Close does not wait
	// out: a WASM compile cannot be interrupted.
	loading sync.WaitGroup
}

// Open starts every agent in file: it opens the shared memory under
// opts.DataDir, connects each agent's model and registers its tools. It
// returns as soon as the agents answer commands — the emergency stop works
// from then on — while plugins load in the background (WaitPlugins);
// turns and tool calls wait for their agent's plugins.
func Open(ctx context.Context, file *config.File, opts Options) (*Fleet, error) {
	if len(file.Agents) == 0 {
		return nil, fmt.Errorf("agent: %s: no agents configured", file.Path)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		return nil, errors.New("agent: Options.DataDir is required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	db, err := memory.Open(ctx, memory.Config{Dir: filepath.Join(opts.DataDir, "memory"), Profile: memoryProfile(file), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	idx, err := openRecall(ctx, file, db, opts.DataDir, log)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if opts.CacheDir == "" {
		opts.CacheDir = cmp.Or(host.DefaultCacheDir(), filepath.Join(opts.DataDir, "cache"))
	}
	wasmT, err := wasm.New(wasm.Config{CacheDir: filepath.Join(opts.CacheDir, "wasm"), Logger: log})
	if err != nil {
		_ = idx.Close()
		_ = db.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f := &Fleet{
		file: file, log: log, store: db, recall: idx, byName: map[string]*Agent{},
		cacheDir:   opts.CacheDir,
		transports: map[string]host.Transport{host.KindWASM: wasmT, host.KindProcess: process.New(process.Config{Logger: log})},
		bgCtx:      bgCtx, stop: stop,
	}
	for i := range file.Agents {
		a, err := newAgent(ctx, f, file.Agents[i])
		if err != nil {
			_ = f.Close(ctx)
			return nil, fmt.Errorf("agent: %s: agent %q: %w", file.Path, file.Agents[i].Name, err)
		}
		f.agents = append(f.agents, a)
		f.byName[a.Name()] = a
	}
	for _, a := range f.agents {
		a.startSchedules()
		a.startWakes()
		f.loading.Go(func() { a.loadPlugins(bgCtx) })
	}
	return f, nil
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

// WaitPlugins waits until every agent has tried to load its plugins and
// returns the failures, each naming the agent and the plugin. A plugin that
// fails to load leaves its agent running without it.
func (f *Fleet) WaitPlugins(ctx context.Context) error {
	var errs []error
	for _, a := range f.agents {
		if err := a.waitPlugins(ctx); err != nil {
			return err
		}
		a.pluginMu.Lock()
		for _, p := range a.cfg.Plugins {
			if err := a.pluginErrs[p.Name]; err != nil {
				errs = append(errs, fmt.Errorf("agent %s: %w", a.Name(), err))
			}
		}
		a.pluginMu.Unlock()
	}
	return errors.Join(errs...)
}

// Stopped reports whether the emergency stop is engaged.
func (f *Fleet) Stopped() bool { return f.estop.Load() }

// Close stops schedules, cancels running turns and closes memory.
func (f *Fleet) Close(ctx context.Context) error {
	f.stop()
	for _, a := range f.agents {
		a.cancelTurns()
	}
	var errs []error
	if !waitCtx(ctx, &f.bg) {
		errs = append(errs, fmt.Errorf("turns still running: %w", ctx.Err()))
	}
	// A plugin still compiling is not worth delaying shutdown for: its
	// loader sees the cancelled context and unloads what it finishes.
	if !waitCtx(ctx, &f.loading) {
		f.log.Warn("shutting down while plugins are still loading")
	}
	for _, a := range f.agents {
		a.settle()
		if err := a.host.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent %s: plugins: %w", a.Name(), err))
		}
	}
	// Memory is closed whatever happened above: acknowledged writes are
	// already durable, and a clean close spares the next start a replay.
	if err := f.recall.Close(); err != nil {
		errs = append(errs, fmt.Errorf("recall: %w", err))
	}
	if err := f.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
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

// Agent is one configured agent.
type Agent struct {
	cfg     config.Agent
	fleet   *Fleet
	log     *slog.Logger
	model   llm.Model // nil: no endpoint configured
	host    *host.Host
	gates   map[string]*gate    // actuator rules by tool name
	mem     *memory.ScopedStore // the agent's view of memory: only its granted namespaces
	tools   *tool.Set
	ns      string // the agent's own namespace
	started time.Time

	turns    atomic.Uint64
	lastTurn atomic.Int64 // unix nanos

	mu       sync.Mutex
	inflight map[uint64]context.CancelFunc // running turns; the agent is busy while any is
	nextTurn uint64

	pluginsLoaded chan struct{} // closed when the configured plugins have been tried
	pluginMu      sync.Mutex
	pluginErrs    map[string]error // why a configured plugin is not loaded, by name

	histMu  sync.Mutex
	history []pastTurn // the newest turns, oldest first: the conversation a turn sees
	writes  sync.WaitGroup
}

func newAgent(ctx context.Context, f *Fleet, cfg config.Agent) (*Agent, error) {
	a := &Agent{
		cfg:      cfg,
		fleet:    f,
		log:      f.log.With("agent", cfg.Name),
		tools:    tool.NewSet(),
		ns:       "agent/" + cfg.Name,
		started:  time.Now(),
		inflight: map[uint64]context.CancelFunc{},

		pluginsLoaded: make(chan struct{}),
		pluginErrs:    map[string]error{},
	}
	gates, err := newGates(cfg.Safety.Actuators)
	if err != nil {
		return nil, err
	}
	a.gates = gates
	mem, err := memory.Scoped(f.store, memory.Grants{Principal: cfg.Name, Read: cfg.Memory.Read, Write: cfg.Memory.Write})
	if err != nil {
		return nil, err
	}
	a.mem = mem
	if err := a.loadHistory(ctx); err != nil {
		return nil, err
	}
	if cfg.Model.BaseURL != "" {
		m, err := llm.NewOpenAI(llm.OpenAIConfig{
			BaseURL: cfg.Model.BaseURL,
			Model:   cfg.Model.Model,
			APIKey:  os.Getenv(cfg.Model.APIKeyEnv),
			Timeout: cfg.Model.Timeout.Std(),
		})
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		a.model = m
	}
	builtins, err := a.builtinTools()
	if err != nil {
		return nil, err
	}
	if err := a.tools.Add(builtins...); err != nil {
		return nil, err
	}
	a.host = a.newHost()
	return a, nil
}

// Name is the agent's configured name.
func (a *Agent) Name() string { return a.cfg.Name }

// Tools is the set of tools the agent can call; the plugin host adds to it.
func (a *Agent) Tools() *tool.Set { return a.tools }

// Status reports the agent's state.
func (a *Agent) Status() Status {
	s := Status{
		Name:    a.cfg.Name,
		Role:    a.cfg.Role,
		State:   "idle",
		Model:   "none",
		Tools:   a.tools.Len(),
		Turns:   a.turns.Load(),
		Started: a.started,
		Memory:  a.fleet.recall.Mode(),
	}
	if a.model != nil {
		s.Model = a.cfg.Model.Model + " @ " + a.cfg.Model.BaseURL
	}
	if n := a.lastTurn.Load(); n != 0 {
		s.LastTurn = time.Unix(0, n)
	}
	switch {
	case a.fleet.Stopped():
		s.State = "stopped"
	case !a.pluginsDone():
		s.State = "starting"
	case a.running() > 0:
		s.State = "busy"
	}
	return s
}

// Handle runs one input: an operator command (text starting with "/") or a
// turn. It streams the turn's events; the last is an EventReply. Stopping
// the iteration early cancels the turn.
func (a *Agent) Handle(ctx context.Context, in Input) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if in.Source == "" {
			in.Source = SourceOperator
		}
		text := strings.TrimSpace(in.Text)
		if strings.HasPrefix(text, "/") && (in.Source == SourceOperator || in.Source == SourceSchedule) {
			a.command(ctx, text, yield)
			return
		}
		a.turn(ctx, in, yield)
	}
}

// Ask runs an input to completion and returns the reply text.
func (a *Agent) Ask(ctx context.Context, in Input) (string, error) {
	var reply string
	for ev, err := range a.Handle(ctx, in) {
		if err != nil {
			return "", err
		}
		if ev.Type == EventReply {
			reply = ev.Text
		}
	}
	return reply, nil
}

// track registers a running turn's cancel func so /stop can reach it.
func (a *Agent) track(cancel context.CancelFunc) (release func()) {
	a.mu.Lock()
	id := a.nextTurn
	a.nextTurn++
	a.inflight[id] = cancel
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		delete(a.inflight, id)
		a.mu.Unlock()
	}
}

// running is the number of turns in flight.
func (a *Agent) running() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inflight)
}

// cancelTurns cancels every running turn and reports how many there were.
func (a *Agent) cancelTurns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cancel := range a.inflight {
		cancel()
	}
	return len(a.inflight)
}

// startWakes follows shared memory for the records the agent's config
// subscribes to; each one starts a turn.
func (a *Agent) startWakes() {
	ctx := a.fleet.bgCtx
	for _, w := range a.cfg.Wake {
		q := memory.Query{Namespace: w.Namespace, Tags: w.Tags, AfterSeq: a.mem.LastSeq()}
		for _, k := range w.Kinds {
			q.Kinds = append(q.Kinds, memory.Kind(k))
		}
		a.fleet.bg.Go(func() {
			for r, err := range a.mem.Watch(ctx, q) {
				if err != nil {
					if ctx.Err() == nil {
						a.log.Error("wake watch ended", "namespace", w.Namespace, "err", err)
					}
					return
				}
				if r.Author == a.cfg.Name {
					continue
				}
				text := fmt.Sprintf("new %s in %s from %s: %s", r.Kind, r.Namespace, r.Author, r.Text)
				if _, err := a.Ask(ctx, Input{Source: SourceAgent, From: r.Author, Text: text}); err != nil {
					a.log.Warn("wake turn failed", "record", r.ID, "err", err)
				}
			}
		})
	}
}

func (a *Agent) startSchedules() {
	ctx := a.fleet.bgCtx
	for _, s := range a.cfg.Schedule {
		a.fleet.bg.Go(func() {
			t := time.NewTicker(s.Every.Std())
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if _, err := a.Ask(ctx, Input{Source: SourceSchedule, From: "schedule", Text: s.Input}); err != nil {
						a.log.Warn("scheduled turn failed", "input", s.Input, "err", err)
					}
				}
			}
		})
	}
}
