package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/policy"
)

// openQuarantine opens the fleet's durable quarantine record. One that
// cannot be read quarantines every plugin (the host refuses to load them)
// until an admin releases each: fail closed, as the safety state does.
func openQuarantine(dir string, log *slog.Logger) (*host.Quarantine, error) {
	q, err := host.OpenQuarantine(dir)
	if err != nil {
		return nil, err
	}
	if why := q.Broken(); why != "" {
		log.Error("every plugin is quarantined at start", "reason", why)
	}
	return q, nil
}

// onQuarantine is the host's word that a plugin was quarantined (a crash
// loop, a stop it did not acknowledge): its tools leave the agent and the
// quarantine is on record.
func (m *pluginManager) onQuarantine(plugin, reason string) {
	n := m.a.tools.RemoveSource(plugin)
	e := policy.Entry{Agent: m.a.cfg.Name, Principal: policy.Principal{Kind: policy.PrincipalSystem}, Kind: policy.ActionHost,
		Action: "plugin.quarantine", Target: plugin, Phase: policy.PhaseEvent, Decision: policy.Deny,
		Reason: fmt.Sprintf("%s; %d tools removed; it stays quarantined across restarts until an admin's /plugins release %s", reason, n, plugin)}
	if _, err := m.a.fleet.audit.Write(context.WithoutCancel(m.a.fleet.bgCtx), e); err != nil {
		m.a.log.Error("audit: quarantine not recorded", "plugin", plugin, "err", err)
	}
}

// release is /plugins release NAME (and reload of a quarantined plugin):
// the quarantine is lifted for good, then the plugin, if configured, loads.
// Who released it is on record through the command's own audit (an admin
// command).
func (m *pluginManager) release(ctx context.Context, name string) (string, error) {
	was, err := m.host.ClearQuarantine(name)
	if err != nil {
		return "", fmt.Errorf("plugin %q stays quarantined: %w", name, err)
	}
	if !was {
		return "", fmt.Errorf("plugin %q is not quarantined (/plugins lists the quarantined ones)", name)
	}
	for _, p := range m.a.cfg.Plugins {
		if p.Name == name {
			// The start-up load the quarantine held back may be running:
			// load waits for it.
			if err := m.load(ctx, p); err != nil {
				return "", fmt.Errorf("plugin %q released from quarantine, but it did not load: %w", name, err)
			}
			return fmt.Sprintf("plugin %s released from quarantine and loaded", name), nil
		}
	}
	return fmt.Sprintf("plugin %s released from quarantine", name), nil
}
