package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/mcp"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
)

// pluginManager loads, unloads and reloads one agent's plugins. Each agent
// has its own host (grants are per agent); the transports, and so the WASM
// compilation cache, are shared by the fleet.
type pluginManager struct {
	a    *Agent
	host *host.Host

	loaded chan struct{} // closed when every configured plugin has been tried

	// mu guards errs, loads and mcp. Lock order: after Agent.mu.
	mu    sync.Mutex
	errs  map[string]error         // why a configured plugin or MCP server is not loaded, by name
	loads map[string]chan struct{} // by plugin name: held while a load of it runs
	mcp   []*mcp.Client
}

// lockLoad waits until no other load of the plugin runs and holds its
// place until unlock.
func (m *pluginManager) lockLoad(ctx context.Context, name string) (unlock func(), err error) {
	m.mu.Lock()
	ch := m.loads[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.loads[name] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("plugin %q: %w", name, ctx.Err())
	}
}

func newPluginManager(a *Agent) *pluginManager {
	m := &pluginManager{a: a, loaded: make(chan struct{}), errs: map[string]error{}, loads: map[string]chan struct{}{}}
	var obs host.Observer // nil: the host counts nothing
	if counting(a.fleet.opts.Metrics) {
		obs = a.fleet.opts.Metrics
	}
	m.host = host.New(host.Config{
		Observer:     obs,
		Agent:        a.cfg.Name,
		Gate:         a.fleet.policy,
		Transports:   a.fleet.transports,
		Store:        a.fleet.store,
		Payments:     a.fleet.hostPayments(a.cfg.Name),
		Logger:       a.log,
		Emit:         m.onEmit,
		OnReading:    m.onReading,
		PinDir:       filepath.Join(a.fleet.cacheDir, "pinned"),
		Signer:       newIdentitySigner(a.fleet.opts.DataDir, a.cfg.Name),
		Quarantine:   a.fleet.quarantine,
		OnQuarantine: m.onQuarantine,
	})
	return m
}

// loadAll tries every plugin in the agent's config, concurrently. A plugin
// that fails is logged and reported (/plugins, WaitPlugins); the agent runs
// on without it.
func (m *pluginManager) loadAll(ctx context.Context) {
	defer close(m.loaded)
	var wg sync.WaitGroup
	for _, p := range m.a.cfg.Plugins {
		wg.Go(func() {
			err := m.load(ctx, p)
			switch {
			case err == nil:
			case ctx.Err() != nil:
				m.a.log.Info("plugin load abandoned: the fleet is closing", "plugin", p.Name)
			default:
				m.a.log.Error("plugin not loaded", "plugin", p.Name, "err", err)
			}
		})
	}
	for _, s := range m.a.cfg.MCP {
		wg.Go(func() {
			if err := m.connectMCP(ctx, s); err != nil && ctx.Err() == nil {
				m.a.log.Error("MCP server not connected", "mcp", s.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// connectMCP connects one configured MCP server and adds its tools. A tool
// a safety rule names is an actuator: the operator's config says so.
func (m *pluginManager) connectMCP(ctx context.Context, s config.MCPServer) (err error) {
	key := "mcp:" + s.Name
	defer func() {
		m.mu.Lock()
		m.errs[key] = err
		m.mu.Unlock()
	}()
	var env []string
	for name, from := range s.Env {
		v, ok := m.a.fleet.opts.Secrets(from)
		if !ok {
			return fmt.Errorf("mcp %s: env %s: environment variable %s is not set", s.Name, name, from)
		}
		env = append(env, name+"="+v)
	}
	c, err := mcp.Connect(ctx, mcp.ClientConfig{
		Name: s.Name, Command: s.Command, Dir: filepath.Dir(m.a.fleet.file.Path), Env: env, URL: s.URL, Timeout: s.Timeout.Std(),
		Effect: func(name string, readOnly bool) tool.Effect {
			declared := tool.EffectWrite
			if readOnly {
				declared = tool.EffectNone
			}
			return m.a.fleet.policy.EffectOf(m.a.cfg.Name, name, declared)
		},
	})
	if err != nil {
		return err
	}
	if err := m.a.tools.Add(c.Tools()...); err != nil {
		_ = c.Close()
		return fmt.Errorf("mcp %s: %w", s.Name, err)
	}
	m.mu.Lock()
	m.mcp = append(m.mcp, c)
	m.mu.Unlock()
	m.a.log.Info("MCP server connected", "mcp", s.Name, "tools", len(c.Tools()))
	return nil
}

// wait waits until the agent's configured plugins have been tried, so a
// turn or tool call sees every tool it will have.
func (m *pluginManager) wait(ctx context.Context) error {
	select {
	case <-m.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s's plugins to load: %w", m.a.cfg.Name, ctx.Err())
	}
}

func (m *pluginManager) done() bool {
	select {
	case <-m.loaded:
		return true
	default:
		return false
	}
}

// failures are the configured plugins that did not load, in config order.
func (m *pluginManager) failures() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, p := range m.a.cfg.Plugins {
		if err := m.errs[p.Name]; err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range m.a.cfg.MCP {
		if err := m.errs["mcp:"+s.Name]; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (m *pluginManager) close(ctx context.Context) error {
	m.mu.Lock()
	clients := m.mcp
	m.mcp = nil
	m.mu.Unlock()
	errs := []error{m.host.Close(ctx)}
	for _, c := range clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// load loads one configured plugin and adds its tools, recording why when
// it cannot. A tool that a safety rule names but the plugin does not
// declare an actuator refuses the whole plugin. Loads of one plugin (the
// start-up load, a release, a reload) run one at a time; one that finds the
// plugin loaded by the load it waited for is done.
func (m *pluginManager) load(ctx context.Context, p config.Plugin) (err error) {
	unlock, err := m.lockLoad(ctx, p.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := m.host.Plugin(p.Name); ok {
		return nil
	}
	defer func() {
		m.mu.Lock()
		m.errs[p.Name] = err
		m.mu.Unlock()
	}()
	spec, err := m.spec(ctx, p)
	if err != nil {
		return err
	}
	loaded, err := m.host.Load(ctx, spec)
	if err != nil {
		return err
	}
	unload := func(cause error) error {
		_ = m.host.Unload(context.WithoutCancel(ctx), p.Name)
		return fmt.Errorf("plugin %q: %w", p.Name, cause)
	}
	if ctx.Err() != nil {
		// The fleet closed while this plugin loaded: nobody will call it.
		return unload(ctx.Err())
	}
	for _, t := range loaded.Tools() {
		s := t.Spec()
		if err := m.a.fleet.policy.CheckTool(m.a.cfg.Name, p.Name, s.Name, s.Effect); err != nil {
			return unload(err)
		}
	}
	if err := m.a.tools.Add(loaded.Tools()...); err != nil {
		return unload(err)
	}
	return nil
}

// spec turns a plugin's config into what the host loads: a Go package
// directory is built (and cached by content hash) first, and secrets are
// resolved from the names the config gives.
func (m *pluginManager) spec(ctx context.Context, p config.Plugin) (host.PluginSpec, error) {
	path := p.Path
	kind := p.Transport
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		target := build.WASM
		if kind == config.TransportProcess {
			target = build.Native
		}
		m.a.log.Info("building plugin from source (the first build takes up to a minute; later starts use the cache)", "plugin", p.Name, "dir", path, "target", target)
		res, err := build.Plugin(ctx, build.Options{Dir: path, Target: target, CacheDir: filepath.Join(m.a.fleet.cacheDir, "plugins"), Logger: m.a.log.With("plugin", p.Name)})
		if err != nil {
			return host.PluginSpec{}, fmt.Errorf("plugin %q: build %s: %w", p.Name, path, err)
		}
		path = res.Path
	}
	secrets := map[string]string{}
	for name, env := range p.Secrets {
		v, ok := m.a.fleet.opts.Secrets(env)
		if !ok {
			return host.PluginSpec{}, fmt.Errorf("plugin %q: secret %s: environment variable %s is not set", p.Name, name, env)
		}
		secrets[name] = v
	}
	return host.PluginSpec{
		Name:         p.Name,
		Path:         path,
		Kind:         kind,
		SHA256:       p.SHA256,
		Grants:       p.Grants,
		UnconfinedOK: p.UnconfinedOK,
		Config:       p.Config,
		Secrets:      secrets,
		Limits: host.Limits{
			MemoryBytes:     uint64(p.Limits.Memory),
			CallTimeout:     p.Limits.CallTimeout.Std(),
			Concurrency:     p.Limits.Concurrency,
			MaxMessageBytes: int(p.Limits.MaxMessage),
		},
	}, nil
}

// pluginNamespace is where a plugin's events and readings are kept: inside
// the agent's own namespace, so the agent reads what its plugins report,
// and written through the agent's grants.
func (m *pluginManager) pluginNamespace(plugin string) string { return m.a.ns + "/" + plugin }

// onEmit stores what a plugin publishes and, when the agent has a model,
// queues it as an input (coalesced with the plugin's other events).
func (m *pluginManager) onEmit(plugin, topic string, payload json.RawMessage) error {
	ctx := m.a.fleet.bgCtx
	m.a.fleet.poses.observe(m.a.cfg.Name, plugin, payload, time.Now())
	text := fmt.Sprintf("%s emitted %s: %s", plugin, topic, payload)
	recs, err := m.a.mem.Put(ctx, memory.Record{
		Namespace: m.pluginNamespace(plugin), Kind: memory.KindObservation, Author: plugin,
		Text: text, Data: payload, Tags: []string{"plugin:" + plugin, "topic:" + topic},
	})
	if err != nil {
		if ctx.Err() == nil { // a put cut short by shutdown is no failure
			m.a.log.Error("store plugin event", "plugin", plugin, "topic", topic, "err", err)
		}
		return fmt.Errorf("event not stored: %w", err)
	}
	if m.a.model != nil {
		m.a.inbox.post(Input{Source: SourceSensor, From: plugin, Cause: recs[0].ID, Text: text})
	}
	return nil
}

// onReading stores each sensor poll as a reading.
func (m *pluginManager) onReading(plugin, sensor string, payload json.RawMessage, err error) {
	if err != nil {
		m.a.log.Warn("sensor poll failed", "plugin", plugin, "sensor", sensor, "err", err)
		return
	}
	m.a.fleet.poses.observe(m.a.cfg.Name, plugin, payload, time.Now())
	_, perr := m.a.mem.Put(m.a.fleet.bgCtx, memory.Record{
		Namespace: m.pluginNamespace(plugin), Kind: memory.KindReading, Author: plugin,
		Text: fmt.Sprintf("%s: %s", sensor, payload), Data: payload,
		Tags: []string{"plugin:" + plugin, "sensor:" + sensor},
	})
	if perr != nil && m.a.fleet.bgCtx.Err() == nil {
		m.a.log.Error("store reading", "plugin", plugin, "sensor", sensor, "err", perr)
	}
}

// PluginInfo is one configured plugin as /plugins reports it.
type PluginInfo struct {
	Name    string   `json:"name"`
	State   string   `json:"state"` // "loading", "loaded", "failed", "unloaded", "quarantined" (until an admin's /plugins release)
	Error   string   `json:"error,omitempty"`
	Version string   `json:"version,omitempty"`
	File    string   `json:"file,omitempty"`
	Tools   []string `json:"tools,omitempty"`
	Sensors int      `json:"sensors,omitempty"`
	// Transport is how the plugin runs; Unconfined is what a process
	// plugin's confinement does not enforce on this kernel (allowed by its
	// unconfined_ok), so an operator sees what the sandbox does not hold.
	Transport  string   `json:"transport,omitempty"`
	Unconfined []string `json:"unconfined,omitempty"`
}

// list reports every configured plugin (and any loaded by hand).
func (m *pluginManager) list() []PluginInfo {
	var out []PluginInfo
	seen := map[string]bool{}
	for _, p := range m.host.Plugins() {
		mf := p.Manifest()
		info := PluginInfo{Name: p.Name(), State: "loaded", Version: mf.Version, File: filepath.Base(p.Spec().Path), Sensors: len(mf.Sensors),
			Transport: cmp.Or(p.Spec().Kind, host.KindWASM), Unconfined: p.Confinement().Missing}
		for _, t := range mf.Tools {
			info.Tools = append(info.Tools, t.Name)
		}
		out = append(out, info)
		seen[p.Name()] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.a.cfg.Plugins {
		if seen[p.Name] {
			continue
		}
		info := PluginInfo{Name: p.Name, State: "loading"}
		if why, ok := m.host.QuarantineOf(p.Name); ok {
			info.State, info.Error = "quarantined", why
		} else if err, tried := m.errs[p.Name]; tried && err != nil {
			info.State, info.Error = "failed", err.Error()
		} else if tried {
			info.State = "unloaded"
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PluginInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// manage is /plugins load|unload|reload NAME.
func (m *pluginManager) manage(ctx context.Context, sub, name string) (string, error) {
	switch sub {
	case "release":
		return m.release(ctx, name)
	case "load":
		for _, p := range m.a.cfg.Plugins {
			if p.Name == name {
				if err := m.load(ctx, p); err != nil {
					return "", err
				}
				return fmt.Sprintf("plugin %s loaded", name), nil
			}
		}
		return "", fmt.Errorf("no plugin %q in %s's config", name, m.a.cfg.Name)
	case "unload":
		if err := m.host.Unload(ctx, name); err != nil {
			return "", err
		}
		n := m.a.tools.RemoveSource(name)
		return fmt.Sprintf("plugin %s unloaded (%d tools removed)", name, n), nil
	case "reload":
		if _, quarantined := m.host.QuarantineOf(name); quarantined {
			return m.release(ctx, name) // quarantined means not loaded: release, then load
		}
		// A failed reload leaves the old plugin running, so its tools stay.
		p, err := m.host.Reload(ctx, name)
		if err != nil {
			return "", err
		}
		for _, t := range p.Tools() {
			s := t.Spec()
			if err := m.a.fleet.policy.CheckTool(m.a.cfg.Name, name, s.Name, s.Effect); err != nil {
				_ = m.host.Unload(ctx, name)
				m.a.tools.RemoveSource(name)
				return "", fmt.Errorf("plugin %q reloaded and refused: %w", name, err)
			}
		}
		m.a.tools.RemoveSource(name)
		if err := m.a.tools.Add(p.Tools()...); err != nil {
			return "", err
		}
		return fmt.Sprintf("plugin %s reloaded (version %s)", name, p.Manifest().Version), nil
	}
	return "", errors.New("unknown /plugins subcommand " + sub + "; use list, load, unload, reload or release")
}
