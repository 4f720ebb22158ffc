package host

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/depai/depai/sdk/wire"
)

// DefaultStopTimeout is how long StopAll waits for a plugin to acknowledge
// its stop when the caller's context has no deadline. A plugin that has not
// answered by then is quarantined.
const DefaultStopTimeout = 250 * time.Millisecond

// StopResult is what one actuator plugin answered to a stop.
type StopResult struct {
	Plugin string
	// Acked: the plugin's stop handler ran and returned without error.
	Acked bool
	Took  time.Duration
	// Err says why it is not acknowledged: the handler failed, the plugin
	// did not answer in time, or it has actuator tools but no stop handler.
	Err *wire.Error
	// Quarantined: the plugin was unloaded for not acknowledging, and Load
	// refuses it until ClearQuarantine.
	Quarantined bool
}

// UrgentInstance is an Instance that can run a call ahead of its queue: a
// stop or a heartbeat must not wait for a call slot behind long tool calls.
// Instances that are not one get stops and heartbeats through Call.
type UrgentInstance interface {
	Instance
	CallUrgent(ctx context.Context, call wire.Call) wire.Result
}

// actuation is the host's side of the stop contract. The zero value is
// ready. Lock order: Host.mu before actuation.mu; neither is held while a
// plugin is called.
type actuation struct {
	mu          sync.Mutex
	beats       map[*Plugin]*heartbeat
	quarantined map[string]string // plugin name → why
	unloading   sync.WaitGroup    // quarantine unloads in flight
}

type heartbeat struct {
	cancel context.CancelFunc
	done   chan struct{}
}

type stoppedKey struct{}

// StopAll calls the stop handler of every loaded actuator plugin at once —
// each plugin that declares one (wire.ActuationDef.Stop) — and waits for
// their answers until ctx's deadline, or DefaultStopTimeout when it has
// none. A plugin whose handler fails or does not answer in time is
// quarantined: unloaded (its calls fail from then on; a process plugin's
// SDK stops the machine once more as its host goes) and refused by Load
// until ClearQuarantine. A plugin with actuator tools and no stop handler is
// reported, not called. Results are in plugin name order; StopAll never
// holds a lock while a plugin runs, so it is safe from any goroutine,
// including the emergency stop's hook while turns are running.
func (h *Host) StopAll(ctx context.Context) []StopResult {
	return h.stopAll(ctx, wire.StopCommanded, h.Plugins())
}

func (h *Host) stopAll(ctx context.Context, reason string, ps []*Plugin) []StopResult {
	ps = slices.DeleteFunc(ps, func(p *Plugin) bool { return !isActuator(p.manifest) })
	if len(ps) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStopTimeout)
		defer cancel()
	}
	out := make([]StopResult, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { out[i] = h.stopPlugin(ctx, p, reason) })
	}
	wg.Wait()
	for i, p := range ps {
		r := &out[i]
		if r.Acked || !p.manifest.Actuation.Stop {
			if !r.Acked {
				h.logger.Error("actuator plugin has no stop handler; the stop did not reach it", "plugin", r.Plugin)
			}
			continue
		}
		r.Quarantined = h.quarantine(p, fmt.Sprintf("did not acknowledge a stop: %v", r.Err))
	}
	return out
}

// isActuator reports whether the stop contract concerns a plugin.
func isActuator(m wire.Manifest) bool {
	return m.Actuation.Stop || slices.ContainsFunc(m.Tools, func(t wire.ToolDef) bool { return t.Effect == wire.EffectActuator })
}

func (h *Host) stopPlugin(ctx context.Context, p *Plugin, reason string) StopResult {
	r := StopResult{Plugin: p.spec.Name}
	if !p.manifest.Actuation.Stop {
		r.Err = wire.Errorf(wire.CodeNotFound, "plugin %q has actuator tools but no stop handler (sdk.OnStop)", p.spec.Name)
		return r
	}
	payload, _ := json.Marshal(wire.StopArgs{Reason: reason})
	start := time.Now()
	res := urgent(ctx, p.inst, newCall(ctx, wire.MethodStop, payload))
	r.Took = time.Since(start)
	p.observe(CallStop, start, res)
	if res.Error != nil {
		r.Err = res.Error
		return r
	}
	r.Acked = true
	return r
}

func urgent(ctx context.Context, inst Instance, call wire.Call) wire.Result {
	if u, ok := inst.(UrgentInstance); ok {
		return u.CallUrgent(ctx, call)
	}
	return inst.Call(ctx, call)
}

// quarantine marks p's name — in Config.Quarantine too, so that a restart
// keeps it — and unloads p in the background (a process takes a while to
// go); Close waits for it. It reports whether p was still loaded.
func (h *Host) quarantine(p *Plugin, reason string) bool {
	name := p.spec.Name
	h.mu.Lock()
	loaded := h.plugins[name] == p
	if loaded {
		delete(h.plugins, name)
		delete(h.grants, name)
	}
	h.mu.Unlock()
	if !loaded {
		return false
	}
	h.act.mu.Lock()
	if h.act.quarantined == nil {
		h.act.quarantined = map[string]string{}
	}
	h.act.quarantined[name] = reason
	h.act.unloading.Add(1)
	h.act.mu.Unlock()
	h.logger.Error("plugin quarantined", "plugin", name, "reason", reason)
	h.observeQuarantine(name)
	if q := h.cfg.Quarantine; q != nil {
		if err := q.Put(h.cfg.Agent, name, reason); err != nil {
			h.logger.Error("quarantine not recorded: a restart would load the plugin again", "plugin", name, "err", err)
		}
	}
	if h.cfg.OnQuarantine != nil {
		h.cfg.OnQuarantine(name, reason)
	}
	go func() {
		defer h.act.unloading.Done()
		h.disarm(p)
		if err := p.close(context.Background()); err != nil {
			h.logger.Error("quarantined plugin did not close cleanly", "plugin", name, "err", err)
		}
	}()
	return true
}

// Quarantined lists the quarantined plugins and why, by name: those of
// this host's life and those Config.Quarantine keeps for its agent.
func (h *Host) Quarantined() map[string]string {
	out := map[string]string{}
	if q := h.cfg.Quarantine; q != nil {
		out = q.List(h.cfg.Agent)
	}
	h.act.mu.Lock()
	defer h.act.mu.Unlock()
	maps.Copy(out, h.act.quarantined)
	return out
}

// ClearQuarantine lets Load start the named plugin again (an operator's
// decision once the machine is checked). It reports whether it was
// quarantined; an error means the release could not be recorded, and the
// plugin stays quarantined.
func (h *Host) ClearQuarantine(name string) (bool, error) {
	h.act.mu.Lock()
	defer h.act.mu.Unlock()
	durable := false
	if q := h.cfg.Quarantine; q != nil {
		var err error
		if durable, err = q.Release(h.cfg.Agent, name); err != nil {
			return false, err
		}
	}
	_, ok := h.act.quarantined[name]
	delete(h.act.quarantined, name)
	return ok || durable, nil
}

// QuarantineOf says why the named plugin is quarantined, if it is: in this
// host's life, in Config.Quarantine, or because that record could not be
// read.
func (h *Host) QuarantineOf(name string) (string, bool) {
	h.act.mu.Lock()
	why, ok := h.act.quarantined[name]
	h.act.mu.Unlock()
	if !ok && h.cfg.Quarantine != nil {
		why, ok = h.cfg.Quarantine.Lookup(h.cfg.Agent, name)
	}
	return why, ok
}

// quarantinedErr refuses to load a quarantined plugin.
func (h *Host) quarantinedErr(name string) error {
	if why, ok := h.QuarantineOf(name); ok {
		return fmt.Errorf("plugin %q is quarantined (%s); check the machine, then release it (/plugins release %s) to load it again", name, why, name)
	}
	return nil
}

// crashLooped quarantines a plugin its transport gave up restarting. p is
// nil when the transport gave up before Load had the plugin.
func (h *Host) crashLooped(name string, p *Plugin, err error) {
	if p == nil {
		h.logger.Error("plugin given up while loading", "plugin", name, "err", err)
		return
	}
	h.quarantine(p, fmt.Sprintf("crash loop: %v", err))
}

// arm starts p's heartbeats, if it declares a watchdog.
func (h *Host) arm(p *Plugin) {
	if isActuator(p.manifest) && !p.manifest.Actuation.Stop {
		h.logger.Warn("actuator plugin has no stop handler (sdk.OnStop): the emergency stop cannot reach it", "plugin", p.spec.Name)
	}
	timeout, err := p.manifest.Actuation.WatchdogTimeout()
	if err != nil || timeout == 0 {
		return
	}
	every := timeout / 3
	ctx, cancel := context.WithCancel(context.Background())
	hb := &heartbeat{cancel: cancel, done: make(chan struct{})}
	h.act.mu.Lock()
	if h.act.beats == nil {
		h.act.beats = map[*Plugin]*heartbeat{}
	}
	h.act.beats[p] = hb
	h.act.mu.Unlock()
	go func() {
		defer close(hb.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		failing := false
		for seq := uint64(1); ; seq++ {
			payload, _ := json.Marshal(wire.HeartbeatArgs{Seq: seq})
			cctx, ccancel := context.WithTimeout(ctx, every)
			res := urgent(cctx, p.inst, newCall(cctx, wire.MethodHeartbeat, payload))
			ccancel()
			if ctx.Err() != nil {
				return
			}
			// Log changes only: a plugin restarting misses many in a row.
			switch {
			case res.Error != nil && !failing:
				failing = true
				h.logger.Warn("heartbeat not delivered; the plugin's watchdog will stop its actuators if this goes on", "plugin", p.spec.Name, "watchdog", timeout, "err", res.Error)
			case res.Error == nil && failing:
				failing = false
				h.logger.Info("heartbeats delivered again", "plugin", p.spec.Name)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// disarm ends p's heartbeats and waits for the sender to return.
func (h *Host) disarm(p *Plugin) {
	h.act.mu.Lock()
	hb := h.act.beats[p]
	delete(h.act.beats, p)
	h.act.mu.Unlock()
	if hb != nil {
		hb.cancel()
		<-hb.done
	}
}

// stopUnloading stops p's actuators before it is closed (unload, reload),
// unless Close already stopped every plugin; then ends its heartbeats.
func (h *Host) stopUnloading(ctx context.Context, p *Plugin) {
	if ctx.Value(stoppedKey{}) == nil && isActuator(p.manifest) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultStopTimeout)
		r := h.stopPlugin(sctx, p, wire.StopUnload)
		cancel()
		if !r.Acked {
			h.logger.Error("actuator plugin did not acknowledge its stop before unload", "plugin", r.Plugin, "err", r.Err)
		}
	}
	h.disarm(p)
}

// stopForClose stops every actuator plugin at once before Close unloads
// them one by one, and marks ctx so that the unloads do not stop them again.
func (h *Host) stopForClose(ctx context.Context) context.Context {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultStopTimeout)
	defer cancel()
	for _, r := range h.stopAll(sctx, wire.StopShutdown, h.Plugins()) {
		if !r.Acked {
			h.logger.Error("actuator plugin did not acknowledge its stop at shutdown", "plugin", r.Plugin, "err", r.Err)
		}
	}
	return context.WithValue(ctx, stoppedKey{}, true)
}

// waitQuarantined waits for quarantine unloads in flight.
func (h *Host) waitQuarantined() { h.act.unloading.Wait() }

// checkActuation checks a manifest's actuation block.
func checkActuation(m wire.Manifest) error {
	_, err := m.Actuation.WatchdogTimeout()
	return err
}
