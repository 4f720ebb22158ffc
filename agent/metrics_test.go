package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/agent/metrics"
)

// TestMetrics scrapes /metrics after real turns and parses it with
// Prometheus's own text-format parser.
func TestMetrics(t *testing.T) {
	srv := llmtest.NewServer(t,
		llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "a", Name: "clock", Arguments: "{}"}, {ID: "b", Name: "teleport", Arguments: "{}"}}},
		llmtest.Reply{Text: "noon"},
		llmtest.Reply{Status: 500, Error: "down"},
	)
	m := metrics.New()
	f, err := openWith(t, fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: m}\n", srv.URL), agent.Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("scout")
	collect(t, a, "time?")
	failure(t, a, "again")
	collect(t, a, "/stop")

	h := httptest.NewServer(m.Handler())
	defer h.Close()
	res, err := http.Get(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		fam := families[name]
		if fam == nil {
			t.Fatalf("no metric %s", name)
		}
		for _, mt := range fam.Metric {
			match := true
			for k, v := range labels {
				found := false
				for _, l := range mt.Label {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				match = match && found
			}
			if match {
				switch {
				case mt.Counter != nil:
					return mt.Counter.GetValue()
				case mt.Gauge != nil:
					return mt.Gauge.GetValue()
				case mt.Histogram != nil:
					return float64(mt.Histogram.GetSampleCount())
				}
			}
		}
		return 0
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"depai_turns_total", map[string]string{"agent": "scout", "outcome": "answer"}, 1},
		{"depai_turns_total", map[string]string{"agent": "scout", "outcome": agent.CodeModelUnavailable}, 1},
		{"depai_model_calls_total", map[string]string{"agent": "scout", "outcome": "ok"}, 2},
		{"depai_tool_calls_total", map[string]string{"tool": "clock", "outcome": "ok"}, 1},
		{"depai_tool_calls_total", map[string]string{"tool": "unknown", "outcome": "not_found"}, 1},
		{"depai_policy_decisions_total", map[string]string{"kind": "command", "verdict": "allow"}, 1},
		{"depai_estop_engaged", nil, 1},
		{"depai_turn_duration_seconds", map[string]string{"agent": "scout"}, 2},
	} {
		if got := value(tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

// agent/metrics' Metrics is what a fleet counts with.
var _ agent.Metrics = (*metrics.Metrics)(nil)
