package mesh

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

// reportLatency adds p50 and p99 of ds to the benchmark's output.
func reportLatency(b *testing.B, ds []time.Duration, unit string) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-"+unit)
	b.ReportMetric(q(0.99), "p99-"+unit)
}

// BenchmarkAsk is one signed request/reply between two agents of one node
// over loopback TCP: sign, send, verify, handle, sign the reply, verify it.
func BenchmarkAsk(b *testing.B) {
	n := startNode(b, Config{Name: "n1", DataDir: b.TempDir(), Agents: agents(b, "alice", "bob"), Limits: Limits{Rate: 1e9, Burst: 1 << 30}})
	mustAgent(b, n, "bob").Serve(echo)
	alice := mustAgent(b, n, "alice")
	ctx := context.Background()
	payload := json.RawMessage(`{"q":"status of pump-3","n":12345}`)
	ds := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := alice.Ask(ctx, "bob", payload, AskOptions{}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportLatency(b, ds, "µs")
}

// BenchmarkAskAcrossLeaf is the same between an agent on a hub and one on
// its leaf node (two embedded servers, the leaf link on loopback).
func BenchmarkAskAcrossLeaf(b *testing.B) {
	f := newFleet(b, nil, Limits{Rate: 1e9, Burst: 1 << 30})
	mustAgent(b, f.leaf, "robot").Serve(echo)
	disp := mustAgent(b, f.hub, "dispatcher")
	ctx := context.Background()
	payload := json.RawMessage(`{"q":"status of pump-3","n":12345}`)
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := disp.Ask(ctx, "robot", payload, AskOptions{}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportLatency(b, ds, "µs")
}

// BenchmarkAskParallel measures sustained signed requests per second: 8
// askers per core against one agent.
func BenchmarkAskParallel(b *testing.B) {
	n := startNode(b, Config{Name: "n1", DataDir: b.TempDir(), Agents: agents(b, "alice", "bob"), Limits: Limits{Rate: 1e9, Burst: 1 << 30}})
	mustAgent(b, n, "bob").Serve(echo)
	alice := mustAgent(b, n, "alice")
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := alice.Ask(ctx, "bob", json.RawMessage(`1`), AskOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
}

// BenchmarkReplicationLag is the time from a Put on the leaf to the hub's
// Watch yielding the record.
func BenchmarkReplicationLag(b *testing.B) {
	f := newFleet(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan time.Time, 1024)
	go func() {
		for _, err := range f.hubStore.Watch(ctx, memory.Query{Namespace: "fleet", AfterSeq: f.hubStore.LastSeq()}) {
			if err != nil {
				return
			}
			seen <- time.Now()
		}
	}()
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := f.leafStor.Put(ctx, memory.Record{Namespace: "fleet", Kind: memory.KindReading, Text: "21.5"}); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-seen:
			ds = append(ds, t1.Sub(t0))
		case <-time.After(10 * time.Second):
			b.Fatal("not replicated within 10 s")
		}
	}
	reportLatency(b, ds, "µs")
}

// BenchmarkLeafCatchUp10k: the leaf is down while the hub writes 10 000
// shared records (in Puts of 100); then the leaf starts again and the
// benchmark times until its store holds all of them. It fails on any lost
// or duplicated record.
func BenchmarkLeafCatchUp10k(b *testing.B) {
	const total = 10000
	for b.Loop() {
		b.StopTimer()
		f := newFleet(b, nil)
		f.leaf.Shutdown()
		ctx := context.Background()
		batch := make([]memory.Record, 100)
		for i := 0; i < total; i += len(batch) {
			for j := range batch {
				batch[j] = memory.Record{Namespace: "fleet", Kind: memory.KindReading, Text: strconv.Itoa(i + j)}
			}
			if _, err := f.hubStore.Put(ctx, batch...); err != nil {
				b.Fatal(err)
			}
		}
		waitFor(b, 30*time.Second, "the hub to publish 10k", func() bool {
			s, err := f.hub.js.Stream(ctx, memStream)
			if err != nil {
				return false
			}
			info, err := s.Info(ctx)
			return err == nil && info.State.Msgs >= total
		})
		b.StartTimer()
		t0, cpu0 := time.Now(), cpuTime()
		f.leaf = startNode(b, f.leafCfg)
		waitFor(b, 60*time.Second, "the leaf to catch up", func() bool { return stored(b, f.leafStor) >= total })
		el, cpu := time.Since(t0), cpuTime()-cpu0
		b.StopTimer()
		if n, d := countIn(b, f.leafStor, "fleet"); n != total || d != 0 {
			b.Fatalf("leaf holds %d records, %d duplicated; want %d, 0", n, d, total)
		}
		b.ReportMetric(el.Seconds()*1000, "catchup-ms")
		// CPU time spent meanwhile (both nodes, the whole process): what the
		// catch-up costs, whatever else the machine is doing.
		b.ReportMetric(cpu.Seconds(), "cpu-s")
		f.leaf.Shutdown()
		f.hub.Shutdown()
		b.StartTimer()
	}
}

// TestRSSProcess is the child of BenchmarkEmbeddedServerRSS: it prints its
// RSS, starts a node with JetStream and the fleet's streams, and prints it
// again.
func TestRSSProcess(t *testing.T) {
	dir := os.Getenv("MESH_RSS_DIR")
	if dir == "" {
		t.Skip("child process of BenchmarkEmbeddedServerRSS")
	}
	before := rssKiB()
	n, err := Start(context.Background(), Config{Name: "n1", Node: key(t, "n1"), DataDir: dir, Agents: agents(t, "alice", "bob"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	registered(t, n, "bob")
	<-n.tasks.ready
	fmt.Printf("rss %d %d\n", before, rssKiB())
	n.Shutdown()
}

func rssKiB() int {
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// BenchmarkEmbeddedServerRSS reports the resident memory an embedded node
// (nats-server with JetStream, two agents, registry and task streams) adds
// to a fresh process. One child process per iteration.
func BenchmarkEmbeddedServerRSS(b *testing.B) {
	var sum float64
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRSSProcess$")
		cmd.Env = append(os.Environ(), "MESH_RSS_DIR="+b.TempDir())
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var before, after int
		for sc.Scan() {
			if _, err := fmt.Sscanf(sc.Text(), "rss %d %d", &before, &after); err == nil {
				break
			}
		}
		cmd.Wait()
		if after == 0 {
			b.Fatal("child printed no RSS")
		}
		sum += float64(after-before) / 1024
	}
	b.ReportMetric(sum/float64(b.N), "rss-added-MiB")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
