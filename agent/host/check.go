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

// CheckManifest checks what a manifest says about itself, whatever an agent
// grants: the ABI, registration errors, unique method names, tool effects,
// sensor intervals and every schema. The host refuses a plugin that fails it,
// and `depai plugin test` runs it so an author learns the same before loading.
func CheckManifest(m wire.Manifest) error {
	if m.ABI != wire.ABIVersion {
		return fmt.Errorf("speaks plugin ABI %d; this agent speaks ABI %d", m.ABI, wire.ABIVersion)
	}
	if len(m.Errors) > 0 {
		return fmt.Errorf("registration failed: %s", strings.Join(m.Errors, "; "))
	}
	if err := checkActuation(m); err != nil {
		return err
	}
	seen := map[string]bool{}
	method := func(kind, name string) error {
		if name == "" {
			return fmt.Errorf("a %s has no name", kind)
		}
		if seen[name] {
			return fmt.Errorf("method %q is registered twice", name)
		}
		seen[name] = true
		return nil
	}
	for _, d := range m.Tools {
		if err := method("tool", d.Name); err != nil {
			return err
		}
		if !d.Effect.Valid() {
			return fmt.Errorf("tool %s: effect %q: want \"\", write, actuator or payment", d.Name, d.Effect)
		}
		if _, err := schema.Parse(rawOr(d.Input, `{"type":"object"}`)); err != nil {
			return fmt.Errorf("tool %s: input schema: %w", d.Name, err)
		}
		if len(d.Output) > 0 {
			if _, err := schema.Parse(d.Output); err != nil {
				return fmt.Errorf("tool %s: output schema: %w", d.Name, err)
			}
		}
	}
	for _, s := range m.Sensors {
		if err := method("sensor", s.Name); err != nil {
			return err
		}
		if s.Interval != "" {
			d, err := time.ParseDuration(s.Interval)
			if err != nil || d < MinSensorInterval {
				return fmt.Errorf("sensor %s: interval %q: want a Go duration of at least %v", s.Name, s.Interval, MinSensorInterval)
			}
		}
		if len(s.Output) > 0 {
			if _, err := schema.Parse(s.Output); err != nil {
				return fmt.Errorf("sensor %s: output schema: %w", s.Name, err)
			}
		}
	}
	return nil
}

// check validates the manifest and the plugin's grants and builds its tools.
func (p *Plugin) check() error {
	m, name := p.manifest, p.spec.Name
	if err := CheckManifest(m); err != nil {
		return fmt.Errorf("plugin %q: %w", name, err)
	}
	if missing := Missing(m.Requests, p.spec.Grants); len(missing) > 0 {
		return fmt.Errorf("plugin %q: requests capabilities that are not granted: %s", name, strings.Join(missing, ", "))
	}
	for _, d := range m.Tools {
		switch d.Effect {
		case tool.EffectActuator:
			if !p.spec.Grants.Actuator {
				return fmt.Errorf("plugin %q: tool %s is an actuator but the plugin is not granted actuator", name, d.Name)
			}
		case tool.EffectPayment:
			if !p.spec.Grants.Payment {
				return fmt.Errorf("plugin %q: tool %s moves money but the plugin is not granted payment", name, d.Name)
			}
		}
		t, err := newPluginTool(p, d)
		if err != nil {
			return fmt.Errorf("plugin %q: %w", name, err)
		}
		p.tools = append(p.tools, t)
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
	flag("actuator", req.Actuator, grant.Actuator)
	flag("payment", req.Payment, grant.Payment)
	flag("sign", req.Sign, grant.Sign)
	exact("net", req.Net, grant.Net, true)
	for _, f := range req.Files {
		if !slices.ContainsFunc(grant.Files, func(g wire.FileGrant) bool {
			return (g.Path == f.Path || strings.HasPrefix(f.Path, strings.TrimSuffix(g.Path, "/")+"/")) && (g.Mode == wire.FileRW || f.Mode != wire.FileRW)
		}) {
			out = append(out, fmt.Sprintf("files %q (%s)", f.Path, f.Mode))
		}
	}
	return out
}

func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(def)
	}
	return raw
}
