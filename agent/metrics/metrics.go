// Package metrics is what depai exposes to Prometheus on GET /metrics:
// turns, model calls, tokens, tool calls, policy decisions, the emergency
// stop, calls into plugins with their restarts and quarantines, and the
// memory store's commits and fsync latency. Every label has a bounded set of values (outcomes are
// event codes, tools are the agent's known tools, verdicts are three), so a
// model that invents tool names cannot blow up the series count.
//
// A nil *Metrics is valid and records nothing, so the core calls it
// unconditionally.
//
// Metric names (all prefixed depai_):
//
//	turns_total{agent,outcome}                 turns ended, by "answer" or error code
//	turn_duration_seconds{agent}               wall time of a turn
//	model_calls_total{agent,outcome}           model calls, by "ok" or error code
//	model_call_duration_seconds{agent}         wall time of one model call
//	tokens_total{agent}                        tokens the endpoints reported (or estimated)
//	tool_calls_total{agent,tool,outcome}       tool calls, by "ok" or wire error code
//	policy_decisions_total{agent,kind,verdict} policy decisions
//	estop_engaged                              1 while the emergency stop is engaged
//	plugin_calls_total{plugin,kind,outcome}    calls into plugins: kind tool|sensor|stop, outcome ok or a wire code ("other" for one the wire does not define)
//	plugin_call_duration_seconds{plugin,kind}  wall time of one call into a plugin
//	plugin_restarts_total{plugin}              restarts after a crash (process plugins)
//	plugin_quarantines_total{plugin}           actuator plugins quarantined for not acknowledging a stop
//	memory_commits_total{outcome}              group commits of the store (ok or error), one fsync each
//	memory_records_written_total               records made durable
//	memory_commit_duration_seconds             one group commit, fsync included
//
// Plugin names are the agent config's, a bounded set. PluginCall,
// PluginRestarted and PluginQuarantined make a *Metrics an
// agent/host.Observer; Commit is a memory.Config.OnCommit.
package metrics

import (
	"net/http"
	"time"

	"github.com/depai/depai/memory"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds depai's collectors in their own registry.
type Metrics struct {
	reg          *prometheus.Registry
	turns        *prometheus.CounterVec
	turnSeconds  *prometheus.HistogramVec
	modelCalls   *prometheus.CounterVec
	modelSeconds *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	toolCalls    *prometheus.CounterVec
	decisions    *prometheus.CounterVec

	pluginCalls   *prometheus.CounterVec
	pluginSeconds *prometheus.HistogramVec
	restarts      *prometheus.CounterVec
	quarantines   *prometheus.CounterVec
	commits       *prometheus.CounterVec
	written       prometheus.Counter
	commitSeconds prometheus.Histogram
}

// New returns a registry with depai's collectors and the Go runtime's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "depai", Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	h := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		c := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "depai", Name: name, Help: help, Buckets: buckets}, []string{"agent"})
		m.reg.MustRegister(c)
		return c
	}
	m.turns = f("turns_total", "Turns ended, by outcome (answer or an error code).", "agent", "outcome")
	m.turnSeconds = h("turn_duration_seconds", "Wall time of a turn.", prometheus.ExponentialBuckets(0.005, 2.5, 12))
	m.modelCalls = f("model_calls_total", "Model calls, by outcome (ok or an error code).", "agent", "outcome")
	m.modelSeconds = h("model_call_duration_seconds", "Wall time of one model call.", prometheus.ExponentialBuckets(0.005, 2.5, 12))
	m.tokens = f("tokens_total", "Tokens the model endpoints reported, or estimated where they report none.", "agent")
	m.toolCalls = f("tool_calls_total", "Tool calls, by tool and outcome (ok or a wire error code).", "agent", "tool", "outcome")
	m.decisions = f("policy_decisions_total", "Policy decisions, by action kind and verdict.", "agent", "kind", "verdict")
	m.pluginCalls = f("plugin_calls_total", "Calls into plugins, by kind (tool, sensor, stop) and outcome (ok, a wire error code, or other).", "plugin", "kind", "outcome")
	m.pluginSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "depai", Name: "plugin_call_duration_seconds", Help: "Wall time of one call into a plugin.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12)}, []string{"plugin", "kind"})
	m.restarts = f("plugin_restarts_total", "Plugin restarts after a crash.", "plugin")
	m.quarantines = f("plugin_quarantines_total", "Actuator plugins quarantined for not acknowledging a stop.", "plugin")
	m.commits = f("memory_commits_total", "Group commits of the memory store (one fsync each), by outcome (ok or error).", "outcome")
	m.written = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "depai", Name: "memory_records_written_total", Help: "Records the memory store made durable."})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "depai", Name: "memory_commit_duration_seconds", Help: "One group commit of the memory store, fsync included.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)})
	m.reg.MustRegister(m.pluginSeconds, m.written, m.commitSeconds)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// EStop reports the emergency stop's state on each scrape.
func (m *Metrics) EStop(engaged func() bool) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "depai", Name: "estop_engaged", Help: "1 while the emergency stop is engaged."},
		func() float64 {
			if engaged() {
				return 1
			}
			return 0
		}))
}

// Turn records a finished turn.
func (m *Metrics) Turn(agent, outcome string, d time.Duration, tokens int) {
	if m == nil {
		return
	}
	m.turns.WithLabelValues(agent, outcome).Inc()
	m.turnSeconds.WithLabelValues(agent).Observe(d.Seconds())
	m.tokens.WithLabelValues(agent).Add(float64(tokens))
}

// ModelCall records one model call.
func (m *Metrics) ModelCall(agent, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.modelCalls.WithLabelValues(agent, outcome).Inc()
	m.modelSeconds.WithLabelValues(agent).Observe(d.Seconds())
}

// ToolCall records one tool call. The caller passes "unknown" for a name
// the agent has no tool for, so invented names do not become series.
func (m *Metrics) ToolCall(agent, tool, outcome string) {
	if m == nil {
		return
	}
	m.toolCalls.WithLabelValues(agent, tool, outcome).Inc()
}

// Decision records one policy decision.
func (m *Metrics) Decision(agent, kind, verdict string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(agent, kind, verdict).Inc()
}

// PluginCall records one call into a plugin (agent/host.Observer).
func (m *Metrics) PluginCall(plugin, kind, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.pluginCalls.WithLabelValues(plugin, kind, outcome).Inc()
	m.pluginSeconds.WithLabelValues(plugin, kind).Observe(took.Seconds())
}

// PluginRestarted records a plugin's restart after a crash.
func (m *Metrics) PluginRestarted(plugin string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(plugin).Inc()
}

// PluginQuarantined records an actuator plugin's quarantine.
func (m *Metrics) PluginQuarantined(plugin string) {
	if m == nil {
		return
	}
	m.quarantines.WithLabelValues(plugin).Inc()
}

// Commit records one group commit of the memory store (memory.Config.OnCommit).
func (m *Metrics) Commit(c memory.CommitInfo) {
	if m == nil {
		return
	}
	if c.Err != nil {
		m.commits.WithLabelValues("error").Inc()
		return
	}
	m.commits.WithLabelValues("ok").Inc()
	m.written.Add(float64(c.Records))
	m.commitSeconds.Observe(c.Took.Seconds())
}
