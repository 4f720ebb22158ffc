package agent_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/depai/depai/agent"
)

// percentiles reports p50 and p99 of ds as benchmark metrics.
func percentiles(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFleetAskAcrossNodes is /ask from the hub's dispatcher to the
// leaf's rover: the command's policy check, a signed envelope over the
// leaf link, verification, the rover's turn (no model: its fixed answer,
// stored like any turn) and the signed reply.
func BenchmarkFleetAskAcrossNodes(b *testing.B) {
	hub, _, _ := hubAndLeaf(b, &inspections{})
	dispatcher, _ := hub.Agent("dispatcher")
	ask := func() agent.Event {
		var last agent.Event
		for ev := range dispatcher.Handle(b.Context(), agent.Input{Text: "/ask rover ping"}) {
			last = ev
		}
		return last
	}
	deadline := time.Now().Add(20 * time.Second)
	for ask().Type != agent.EventReply {
		if time.Now().After(deadline) {
			b.Fatal("rover never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if ev := ask(); ev.Type != agent.EventReply {
			b.Fatalf("ask: %+v", ev)
		}
		ds = append(ds, time.Since(start))
	}
	percentiles(b, ds)
}

// BenchmarkFleetReplicationLag writes a reading on the leaf and waits for
// it in the hub's memory (through a wake-free Watch: /memory get by ID).
func BenchmarkFleetReplicationLag(b *testing.B) {
	hub, leaf, _ := hubAndLeaf(b, &inspections{})
	rover, _ := leaf.Agent("rover")
	dispatcher, _ := hub.Agent("dispatcher")
	ds := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		var put agent.Event
		for ev := range rover.Handle(b.Context(), agent.Input{Text: `/call memory.put {"text":"t 20","namespace":"site","kind":"observation"}`}) {
			put = ev
		}
		var id struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(put.Data, &id); err != nil || id.ID == "" {
			b.Fatalf("put: %+v", put)
		}
		for {
			var got agent.Event
			for ev := range dispatcher.Handle(b.Context(), agent.Input{Text: "/memory get " + id.ID}) {
				got = ev
			}
			if got.Type == agent.EventReply {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		ds = append(ds, time.Since(start))
	}
	percentiles(b, ds)
}
