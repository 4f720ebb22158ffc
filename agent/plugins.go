package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// newHost gives an agent its own plugin host: grants are per agent, while
// the transports (and so the WASM compilation cache) are shared by the fleet.
func (a *Agent) newHost() *host.Host {
	return host.New(host.Config{
		Transports: a.fleet.transports,
		Store:      a.fleet.store,
		Logger:     a.log,
		Emit:       a.onEmit,
		OnReading:  a.onReading,
		PinDir:     filepath.Join(a.fleet.cacheDir, "pinned"),
	})
}

// loadPlugins tries every plugin in the agent's config. A plugin that fails
// is logged and reported (/plugins, WaitPlugins); the agent runs on without it.
func (a *Agent) loadPlugins(ctx context.Context) {
	defer close(a.pluginsLoaded)
	for _, p := range a.cfg.Plugins {
		err := a.loadPlugin(ctx, p)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			a.log.Info("plugin load abandoned: the fleet is closing", "plugin", p.Name)
		default:
			a.log.Error("plugin not loaded", "plugin", p.Name, "err", err)
		}
	}
}

// waitPlugins waits until the agent's configured plugins have been tried,
// so a turn or tool call sees every tool it will have.
func (a *Agent) waitPlugins(ctx context.Context) error {
	select {
	case <-a.pluginsLoaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s's plugins to load: %w", a.cfg.Name, ctx.Err())
	}
}

func (a *Agent) pluginsDone() bool {
	select {
	case <-a.pluginsLoaded:
		return true
	default:
		return false
	}
}

// loadPlugin loads one configured plugin and adds its tools, recording why
// when it cannot.
func (a *Agent) loadPlugin(ctx context.Context, p config.Plugin) (err error) {
	defer func() {
		a.pluginMu.Lock()
		a.pluginErrs[p.Name] = err
		a.pluginMu.Unlock()
	}()
	spec, err := a.pluginSpec(ctx, p)
	if err != nil {
		return err
	}
	loaded, err := a.host.Load(ctx, spec)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		// The fleet closed while this plugin loaded: nobody will call it.
		_ = a.host.Unload(context.WithoutCancel(ctx), p.Name)
		return fmt.Errorf("plugin %q: %w", p.Name, ctx.Err())
	}
	if err := a.tools.Add(loaded.Tools()...); err != nil {
		_ = a.host.Unload(ctx, p.Name)
		return fmt.Errorf("plugin %q: %w", p.Name, err)
	}
	return nil
}

// pluginSpec turns a plugin's config into what the host loads: a Go package
// directory is built (and cached by content hash) first, and secrets are
// read from the environment variables the config names.
func (a *Agent) pluginSpec(ctx context.Context, p config.Plugin) (host.PluginSpec, error) {
	path := p.Path
	kind := p.Transport
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		target := build.WASM
		if kind == config.TransportProcess {
			target = build.Native
		}
		res, err := build.Plugin(ctx, build.Options{Dir: path, Target: target, CacheDir: filepath.Join(a.fleet.cacheDir, "plugins")})
		if err != nil {
			return host.PluginSpec{}, fmt.Errorf("plugin %q: build %s: %w", p.Name, path, err)
		}
		path = res.Path
	}
	secrets := map[string]string{}
	for name, env := range p.Secrets {
		v, ok := os.LookupEnv(env)
		if !ok {
			return host.PluginSpec{}, fmt.Errorf("plugin %q: secret %s: environment variable %s is not set", p.Name, name, env)
		}
		secrets[name] = v
	}
	g := p.Grants
	return host.PluginSpec{
		Name:   p.Name,
		Path:   path,
		Kind:   kind,
		SHA256: p.SHA256,
		Grants: wire.Capabilities{
			MemoryRead: g.MemoryRead, MemoryWrite: g.MemoryWrite, HTTP: g.HTTP, Emit: g.Emit,
			Secrets: g.Secrets, Config: g.Config, Clock: g.Clock, Random: g.Random,
			Actuator: g.Actuator, Payment: g.Payment, Files: g.Files, Net: g.Net,
		},
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

// onEmit stores what a plugin publishes and, when the agent has a model,
// lets it react in a turn of its own.
func (a *Agent) onEmit(plugin, topic string, payload json.RawMessage) error {
	ctx := context.Background()
	text := fmt.Sprintf("%s emitted %s: %s", plugin, topic, payload)
	_, err := a.fleet.store.Put(ctx, memory.Record{
		Namespace: a.ns, Kind: memory.KindObservation, Author: plugin,
		Text: text, Data: payload, Tags: []string{"plugin:" + plugin, "topic:" + topic},
	})
	if err != nil {
		a.log.Error("store plugin event", "plugin", plugin, "topic", topic, "err", err)
		return fmt.Errorf("event not stored: %w", err)
	}
	if a.model == nil {
		return nil
	}
	a.fleet.bg.Go(func() {
		if _, err := a.Ask(a.fleet.bgCtx, Input{Source: SourceSensor, From: plugin, Text: text}); err != nil {
			a.log.Warn("event turn", "plugin", plugin, "err", err)
		}
	})
	return nil
}

// onReading stores each sensor poll as a reading.
func (a *Agent) onReading(plugin, sensor string, payload json.RawMessage, err error) {
	if err != nil {
		a.log.Warn("sensor poll failed", "plugin", plugin, "sensor", sensor, "err", err)
		return
	}
	_, perr := a.fleet.store.Put(context.Background(), memory.Record{
		Namespace: a.ns, Kind: memory.KindReading, Author: plugin,
		Text: fmt.Sprintf("%s: %s", sensor, payload), Data: payload,
		Tags: []string{"plugin:" + plugin, "sensor:" + sensor},
	})
	if perr != nil {
		a.log.Error("store reading", "plugin", plugin, "sensor", sensor, "err", perr)
	}
}

// pluginsCommand is /plugins [list | load NAME | unload NAME | reload NAME].
func (a *Agent) pluginsCommand(ctx context.Context, rest string) string {
	sub, name, _ := strings.Cut(rest, " ")
	name = strings.TrimSpace(name)
	if sub != "" && sub != "list" && name == "" {
		return fmt.Sprintf("usage: /plugins %s NAME", sub)
	}
	switch sub {
	case "", "list":
		return a.pluginList()
	case "load":
		for _, p := range a.cfg.Plugins {
			if p.Name == name {
				if err := a.loadPlugin(ctx, p); err != nil {
					return "error: " + err.Error()
				}
				return fmt.Sprintf("plugin %s loaded", name)
			}
		}
		return fmt.Sprintf("error: no plugin %q in %s's config", name, a.cfg.Name)
	case "unload":
		if err := a.host.Unload(ctx, name); err != nil {
			return "error: " + err.Error()
		}
		n := a.tools.RemoveSource(name)
		return fmt.Sprintf("plugin %s unloaded (%d tools removed)", name, n)
	case "reload":
		// A failed reload leaves the old plugin running, so its tools stay.
		p, err := a.host.Reload(ctx, name)
		if err != nil {
			return "error: " + err.Error()
		}
		a.tools.RemoveSource(name)
		if err := a.tools.Add(p.Tools()...); err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("plugin %s reloaded (version %s)", name, p.Manifest().Version)
	}
	return fmt.Sprintf("unknown /plugins subcommand %q; use list, load, unload or reload", sub)
}

func (a *Agent) pluginList() string {
	if !a.pluginsDone() {
		return "plugins are still loading; /status shows the agent as starting until they are"
	}
	ps := a.host.Plugins()
	var b strings.Builder
	a.pluginMu.Lock()
	for _, p := range a.cfg.Plugins {
		if err := a.pluginErrs[p.Name]; err != nil {
			fmt.Fprintf(&b, "NOT LOADED %s: %v\n", p.Name, err)
		}
	}
	a.pluginMu.Unlock()
	if len(ps) == 0 {
		return b.String() + "no plugins loaded"
	}
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PLUGIN\tVERSION\tFILE\tTOOLS\tSENSORS")
	for _, p := range ps {
		m := p.Manifest()
		names := make([]string, 0, len(m.Tools))
		for _, t := range m.Tools {
			names = append(names, t.Name)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", p.Name(), m.Version, filepath.Base(p.Spec().Path), strings.Join(names, ","), len(m.Sensors))
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}
