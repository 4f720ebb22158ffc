package process

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/metrics"
)

var _ host.Observer = (*metrics.Metrics)(nil)

// scrape reads m's /metrics with Prometheus's own text-format parser and
// returns a lookup of one series' value (a histogram's sample count).
func scrape(t *testing.T, m *metrics.Metrics) func(name string, labels ...string) float64 {
	t.Helper()
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rr.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return func(name string, labels ...string) float64 {
		fam := fams[name]
		if fam == nil {
			return 0
		}
	next:
		for _, mt := range fam.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range mt.Label {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
		return 0
	}
}

// TestHostObserverMetrics runs real process plugins under a host whose
// Observer is depai's metrics and reads what /metrics says of their tool
// calls, a crash and its restart, stops, and a quarantine.
func TestHostObserverMetrics(t *testing.T) {
	rec := newRecorder()
	m := metrics.New()
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindProcess: New(testConfig(rec))},
		Logger:     slog.New(rec),
		Observer:   m,
	})
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	for i := range 2 {
		if _, err := h.Load(context.Background(), stopSpec(t, i, host.Limits{})); err != nil {
			t.Fatal(err)
		}
	}
	stateOf(t, h, "robot-0")
	stateOf(t, h, "robot-0")
	if _, err := toolCall(t, h, "robot-1", "crash", nil); err == nil {
		t.Fatal("crash returned no error")
	}
	rec.waitFor(t, "plugin restarted", "robot-1")
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, m)("depai_plugin_restarts_total", "plugin", "robot-1") != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := toolCall(t, h, "robot-0", "ignore", map[string]bool{"on": true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	h.StopAll(ctx)

	v := scrape(t, m)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"depai_plugin_calls_total", []string{"plugin", "robot-0", "kind", "tool", "outcome", "ok"}, 3}, // state, state, ignore
		{"depai_plugin_calls_total", []string{"plugin", "robot-1", "kind", "tool", "outcome", "crashed"}, 1},
		{"depai_plugin_calls_total", []string{"plugin", "robot-1", "kind", "stop", "outcome", "ok"}, 1},
		{"depai_plugin_calls_total", []string{"plugin", "robot-0", "kind", "stop", "outcome", "timeout"}, 1},
		{"depai_plugin_call_duration_seconds", []string{"plugin", "robot-0", "kind", "tool"}, 3},
		{"depai_plugin_restarts_total", []string{"plugin", "robot-1"}, 1},
		{"depai_plugin_restarts_total", []string{"plugin", "robot-0"}, 0},
		{"depai_plugin_quarantines_total", []string{"plugin", "robot-0"}, 1},
		{"depai_plugin_quarantines_total", []string{"plugin", "robot-1"}, 0},
	} {
		if got := v(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
