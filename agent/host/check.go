package host

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/schema"
	"github.com/depai/depai/sdk/wire"
)

// MinSensorInterval bounds how often a sensor may ask to be polled.
const MinSensorInterval = 10 * time.Millisecond

// check validates the manifest against the ABI and the plugin's grants and
// builds its tools.
func (p *Plugin) check() error {
	m, name := p.manifest, p.spec.Name
	if m.ABI != wire.ABIVersion {
		return fmt.Errorf("plugin %q: speaks plugin ABI %d; this agent speaks ABI %d", name, m.ABI, wire.ABIVersion)
	}
	if len(m.Errors) > 0 {
		return fmt.Errorf("plugin %q: registration failed: %s", name, strings.Join(m.Errors, "; "))
	}
	if missing := Missing(m.Requests, p.spec.Grants); len(missing) > 0 {
		return fmt.Errorf("plugin %q: requests capabilities that are not granted: %s", name, strings.Join(missing, ", "))
	}
	seen := map[string]bool{}
	for _, d := range m.Tools {
		if d.Name == "" {
			return fmt.Errorf("plugin %q: a tool has no name", name)
		}
		if seen[d.Name] {
			return fmt.Errorf("plugin %q: method %q is registered twice", name, d.Name)
		}
		seen[d.Name] = true
		t, err := newPluginTool(p, d)
		if err != nil {
			return fmt.Errorf("plugin %q: %w", name, err)
		}
		switch t.spec.Effect {
		case tool.EffectActuator:
			if !p.spec.Grants.Actuator {
				return fmt.Errorf("plugin %q: tool %s is an actuator but the plugin is not granted actuator", name, d.Name)
			}
		case tool.EffectPayment:
			if !p.spec.Grants.Payment {
				return fmt.Errorf("plugin %q: tool %s moves money but the plugin is not granted payment", name, d.Name)
			}
		}
		p.tools = append(p.tools, t)
	}
	for _, s := range m.Sensors {
		if s.Name == "" {
			return fmt.Errorf("plugin %q: a sensor has no name", name)
		}
		if seen[s.Name] {
			return fmt.Errorf("plugin %q: method %q is registered twice", name, s.Name)
		}
		seen[s.Name] = true
		if s.Interval != "" {
			d, err := time.ParseDuration(s.Interval)
			if err != nil || d < MinSensorInterval {
				return fmt.Errorf("plugin %q: sensor %s: interval %q: want a Go duration of at least %v", name, s.Name, s.Interval, MinSensorInterval)
			}
		}
		if len(s.Output) > 0 {
			if _, err := schema.Parse(s.Output); err != nil {
				return fmt.Errorf("plugin %q: sensor %s: output schema: %w", name, s.Name, err)
			}
		}
	}
	return nil
}

// Missing lists what req asks for that grant does not give, in the words of
// the config (e.g. `memory_write "notes"`, `clock`). Memory grants cover the
// namespaces below them; everything else must match exactly.
func Missing(req, grant wire.Capabilities) []string {
	var out []string
	ns := func(field string, want, have []string) {
		for _, w := range want {
			if !memory.Granted(have, w) {
				out = append(out, fmt.Sprintf("%s %q", field, w))
			}
		}
	}
	exact := func(field string, want, have []string, fold bool) {
		for _, w := range want {
			if !slices.ContainsFunc(have, func(g string) bool { return g == w || fold && strings.EqualFold(g, w) }) {
				out = append(out, fmt.Sprintf("%s %q", field, w))
			}
		}
	}
	flag := func(field string, want, have bool) {
		if want && !have {
			out = append(out, field)
		}
	}
	ns("memory_read", req.MemoryRead, grant.MemoryRead)
	ns("memory_write", req.MemoryWrite, grant.MemoryWrite)
	exact("http", req.HTTP, grant.HTTP, true)
	exact("emit", req.Emit, grant.Emit, false)
	exact("secrets", req.Secrets, grant.Secrets, false)
	exact("config", req.Config, grant.Config, false)
	flag("clock", req.Clock, grant.Clock)
	flag("random", req.Random, grant.Random)
	flag("actuator", req.Actuator, grant.Actuator)
	flag("payment", req.Payment, grant.Payment)
	return out
}

func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(def)
	}
	return raw
}
