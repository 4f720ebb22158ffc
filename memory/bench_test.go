package memory_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

// benchRecord is a typical observation: ~200 bytes of text and tags.
func benchRecord(i int) memory.Record {
	return memory.Record{
		Namespace: fmt.Sprintf("agent/robot-%d", i%10),
		Kind:      memory.KindObservation,
		Author:    fmt.Sprintf("robot-%d", i%10),
		Text:      fmt.Sprintf("observation %d: pallet 4711 moved from dock 3 to aisle 12, battery 81%%, no obstacles, temperature 21.5 C, humidity 40%%", i),
		Tags:      []string{"dock", "pallet"},
	}
}

// BenchmarkPutDurable measures acknowledged (fsynced) Puts of one record
// each from many concurrent writers: group commit at work. Every Put
// returns only after its record is durable.
func BenchmarkPutDurable(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		// par × GOMAXPROCS goroutines; 1 on a 2-core machine is 2 writers.
		b.Run(fmt.Sprintf("writers=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			db, err := memory.Open(context.Background(), memory.Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var mu sync.Mutex
			var lat []time.Duration
			var n atomic.Int64
			commits := memory.CommitsForTest(db)
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					i := int(n.Add(1))
					t0 := time.Now()
					if _, err := db.Put(context.Background(), benchRecord(i)); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			reportLatency(b, lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(memory.CommitsForTest(db)-commits), "records/fsync")
		})
	}
}

// BenchmarkPutDeferred is what deferring costs and saves: one writer's
// puts one after another (each its own commit: cpu-µs/record is about what
// a commit and its fsync cost), and eight writers' puts and deferred puts
// (which wait up to Config.CommitDelay for company: fewer fsyncs and less
// CPU a record, each write up to the delay later).
func BenchmarkPutDeferred(b *testing.B) {
	for _, c := range []struct {
		name     string
		par      int // × GOMAXPROCS goroutines
		deferred bool
	}{{"writers=1/put", 0, false}, {"writers=8/put", 4, false}, {"writers=8/deferred", 4, true}} {
		b.Run(c.name, func(b *testing.B) {
			db, err := memory.Open(context.Background(), memory.Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			put := db.Put
			if c.deferred {
				put = db.PutDeferred
			}
			var n atomic.Int64
			commits := memory.CommitsForTest(db)
			write := func() bool {
				if _, err := put(context.Background(), benchRecord(int(n.Add(1)))); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			cpu := cpuTime()
			b.ResetTimer()
			if c.par == 0 {
				for range b.N {
					if !write() {
						return
					}
				}
			} else {
				b.SetParallelism(c.par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() && write() {
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/record")
			b.ReportMetric(float64(b.N)/float64(memory.CommitsForTest(db)-commits), "records/fsync")
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

var (
	seedOnce sync.Once
	seedDir  string
	seedErr  error
)

// benchStoreRecords is the size of the store the query and open benchmarks
// use (override with DEPAI_BENCH_RECORDS).
func benchStoreRecords() int {
	if n, err := strconv.Atoi(os.Getenv("DEPAI_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// seededStore builds (once per process) a closed store of benchStoreRecords
// records across 10 namespaces; one record in 1000 is a KindTask.
func seededStore(b *testing.B) string {
	seedOnce.Do(func() {
		seedDir, seedErr = os.MkdirTemp("", "depai-memory-bench-")
		if seedErr != nil {
			return
		}
		db, err := memory.Open(context.Background(), memory.Config{Dir: seedDir})
		if err != nil {
			seedErr = err
			return
		}
		total := benchStoreRecords()
		batch := make([]memory.Record, 0, 500)
		for i := range total {
			r := benchRecord(i)
			if i%1000 == 0 {
				r.Kind = memory.KindTask
			}
			batch = append(batch, r)
			if len(batch) == cap(batch) || i == total-1 {
				if _, err := db.Put(context.Background(), batch...); err != nil {
					seedErr = err
					return
				}
				batch = batch[:0]
			}
		}
		seedErr = db.Close()
	})
	if seedErr != nil {
		b.Fatal(seedErr)
	}
	return seedDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if seedDir != "" {
		os.RemoveAll(seedDir)
	}
	os.Exit(code)
}

// BenchmarkQueryNewest20 measures newest-20 queries on a seeded store:
// from the RAM ring, from badger with the ring off, and a sparse filter
// (1 in 1000 records) that the ring cannot answer.
func BenchmarkQueryNewest20(b *testing.B) {
	dir := seededStore(b)
	cases := []struct {
		name   string
		recent int
		q      memory.Query
	}{
		{"ring/namespace", 0, memory.Query{Namespace: "agent/robot-3", Limit: 20}},
		{"ring/all", 0, memory.Query{Limit: 20}},
		{"badger/namespace", -1, memory.Query{Namespace: "agent/robot-3", Limit: 20}},
		{"badger/all", -1, memory.Query{Limit: 20}},
		{"badger/sparse-kind", 0, memory.Query{Kinds: []memory.Kind{memory.KindTask}, Limit: 20}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			db, err := memory.Open(context.Background(), memory.Config{Dir: dir, RecentRecords: c.recent, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, err := range db.Query(context.Background(), c.q) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != 20 {
					b.Fatalf("got %d records", n)
				}
			}
		})
	}
}

// BenchmarkOpenClose measures Open (which loads the namespace set and the
// newest records into RAM) and a clean Close of the seeded store, Close
// right after writing 10k records (a memtable to flush), and Open of an
// empty directory (fresh: what a short-lived agent with a new data dir, such
// as the peers harness's cold start, waits for; first-put-ms is its first
// durable Put, which waits for the format version written behind the open).
//
// DEPAI_BENCH_STORE names a store to open instead, with the lowmem profile
// (a copy of one of BenchmarkStopReachable's cached data dirs, DIR/memory:
// its opens are what a start of depai run waits for). open-cpu-ms is the
// process's CPU time during Open, which depends far less on the machine's
// load than open-ms.
func BenchmarkOpenClose(b *testing.B) {
	dir, profile := os.Getenv("DEPAI_BENCH_STORE"), memory.ProfileLowMem
	if dir == "" {
		dir, profile = seededStore(b), memory.ProfileDefault
	}
	b.Run("idle", func(b *testing.B) {
		var open, closing, cpu time.Duration
		for b.Loop() {
			c0, t0 := cpuTime(), time.Now()
			db, err := memory.Open(context.Background(), memory.Config{Dir: dir, Profile: profile, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			cpu += cpuTime() - c0
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			open += t1.Sub(t0)
			closing += time.Since(t1)
		}
		b.ReportMetric(float64(open.Microseconds())/float64(b.N)/1000, "open-ms")
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "open-cpu-ms")
		b.ReportMetric(float64(closing.Microseconds())/float64(b.N)/1000, "close-ms")
	})
	b.Run("fresh", func(b *testing.B) {
		var open, first, cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			c0, t0 := cpuTime(), time.Now()
			db, err := memory.Open(context.Background(), memory.Config{Dir: dir, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			cpu += cpuTime() - c0
			if _, err := db.Put(context.Background(), benchRecord(0)); err != nil {
				b.Fatal(err)
			}
			open, first = open+t1.Sub(t0), first+time.Since(t1)
			b.StopTimer()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(open.Microseconds())/float64(b.N)/1000, "open-ms")
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "open-cpu-ms")
		b.ReportMetric(float64(first.Microseconds())/float64(b.N)/1000, "first-put-ms")
	})
	b.Run("after-writes", func(b *testing.B) {
		var closing time.Duration
		for b.Loop() {
			b.StopTimer()
			db, err := memory.Open(context.Background(), memory.Config{Dir: b.TempDir(), GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]memory.Record, 500)
			for range 20 {
				for i := range recs {
					recs[i] = benchRecord(i)
				}
				if _, err := db.Put(context.Background(), recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			t0 := time.Now()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			closing += time.Since(t0)
		}
		b.ReportMetric(float64(closing.Microseconds())/float64(b.N)/1000, "close-ms")
	})
}

const rssEnv = "DEPAI_MEMORY_RSS_CHILD"

// BenchmarkLowMemRSS writes 100 MB of records (1 KiB each, 64 concurrent
// writers) into a ProfileLowMem store in a child process of this test
// binary. The child samples its /proc/self/status every 100 ms from Open
// until 5 s after the last write (so the compactions the burst left behind
// are included) and reports: the resident set at the end (rss-MB, split into
// anonymous memory and file pages — badger's memory-mapped tables, which the
// lowmem profile pages out every TrimInterval, 1 s), the peaks of each
// part, and VmHWM. The child runs with GOMEMLIMIT=64MiB, as a robot
// deployment of the lowmem profile would.
func BenchmarkLowMemRSS(b *testing.B) {
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLowMemRSSChild$")
		cmd.Env = append(os.Environ(), rssEnv+"="+b.TempDir(), "GOMEMLIMIT=64MiB")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		figures := map[string]float64{}
		for line := range strings.Lines(string(out)) {
			var name string
			var v float64
			if n, _ := fmt.Sscanf(line, "figure %s %f", &name, &v); n == 2 {
				figures[name] = v
			}
		}
		if len(figures) == 0 {
			b.Fatalf("child printed no figures:\n%s", out)
		}
		for name, v := range figures {
			b.ReportMetric(v, name)
		}
	}
}

// TestLowMemRSSChild is the child of BenchmarkLowMemRSS; it does nothing in
// a normal test run.
func TestLowMemRSSChild(t *testing.T) {
	dir := os.Getenv(rssEnv)
	if dir == "" {
		t.Skip("run by BenchmarkLowMemRSS")
	}
	var peakAnon, peakFile atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if a := int64(procStatus("RssAnon")); a > peakAnon.Load() {
				peakAnon.Store(a)
			}
			if f := int64(procStatus("RssFile")); f > peakFile.Load() {
				peakFile.Store(f)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	db, err := memory.Open(context.Background(), memory.Config{Dir: filepath.Join(dir, "memory"), Profile: memory.ProfileLowMem})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 32) // 1 KiB
	total := 100 << 20 / 1024
	if mb, err := strconv.Atoi(os.Getenv("DEPAI_RSS_MB")); err == nil {
		total = mb << 20 / 1024
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= total; i = int(next.Add(1)) {
				r := benchRecord(i)
				r.Text = text
				if _, err := db.Put(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	time.Sleep(5 * time.Second)
	close(stop)
	<-sampled
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, anon, file, hwm := procStatus("VmRSS"), procStatus("RssAnon"), procStatus("RssFile"), procStatus("VmHWM")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mb := func(kB int64) float64 { return float64(kB) / 1024 }
	fmt.Printf("figure rss-MB %.1f\n", mb(int64(rss)))
	fmt.Printf("figure anon-MB %.1f\n", mb(int64(anon)))
	fmt.Printf("figure file-MB %.1f\n", mb(int64(file)))
	fmt.Printf("figure peak-anon-MB %.1f\n", mb(peakAnon.Load()))
	fmt.Printf("figure peak-file-MB %.1f\n", mb(peakFile.Load()))
	fmt.Printf("figure hwm-MB %.1f\n", mb(int64(hwm)))
	fmt.Printf("figure go-heap-MB %.1f\n", float64(ms.HeapInuse)/(1<<20))
	fmt.Printf("figure write-MB/s %.2f\n", float64(total)/1024/secs)
}

func procStatus(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
