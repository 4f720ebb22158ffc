package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/depai/depai/agent/metrics"
	"github.com/depai/depai/memory"
)

// TestMemoryCommits: a real badger store with the metrics as its OnCommit
// hook; /metrics, parsed by Prometheus's parser, counts every record
// written, and one fsync latency sample per successful commit.
func TestMemoryCommits(t *testing.T) {
	m := metrics.New()
	db, err := memory.Open(t.Context(), memory.Config{Dir: filepath.Join(t.TempDir(), "memory"), OnCommit: m.Commit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 5 {
		if _, err := db.Put(t.Context(), memory.Record{Namespace: "agent/a", Kind: memory.KindReading, Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]memory.Record, 20)
	for i := range batch {
		batch[i] = memory.Record{Namespace: "agent/a", Kind: memory.KindReading, Text: fmt.Sprint("b", i)}
	}
	if _, err := db.Put(t.Context(), batch...); err != nil {
		t.Fatal(err)
	}
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rr.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	written := fams["depai_memory_records_written_total"].GetMetric()[0].GetCounter().GetValue()
	if written != 25 {
		t.Errorf("records written = %v, want 25", written)
	}
	var ok, failed float64
	for _, mt := range fams["depai_memory_commits_total"].GetMetric() {
		switch mt.GetLabel()[0].GetValue() {
		case "ok":
			ok = mt.GetCounter().GetValue()
		default:
			failed = mt.GetCounter().GetValue()
		}
	}
	// Group commit may fold writers together, never one Put into two.
	if ok < 1 || ok > 6 || failed != 0 {
		t.Errorf("commits ok=%v error=%v, want 1..6 and 0", ok, failed)
	}
	h := fams["depai_memory_commit_duration_seconds"].GetMetric()[0].GetHistogram()
	if float64(h.GetSampleCount()) != ok || h.GetSampleSum() <= 0 {
		t.Errorf("commit latency: %d samples summing %vs for %v commits", h.GetSampleCount(), h.GetSampleSum(), ok)
	}
}

// TestNilMetricsRecordNothing: the core calls a nil *Metrics freely.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	m.PluginCall("p", "tool", "ok", 0)
	m.PluginRestarted("p")
	m.PluginQuarantined("p")
	m.Commit(memory.CommitInfo{Records: 1})
}
