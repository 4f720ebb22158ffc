package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var benchFleets = []struct{ name, file string }{
	{"example", "../../examples/fleet/fleet.yaml"},
	{"testdata", "testdata/fleet.yaml"},
}

// BenchmarkRunStartToReady measures `depai run FILE` from exec to its ready
// log line (the target: ≤ 100 ms), with a warm data directory as on
// every start but the first. ns/op is that time; rss-MB is the resident set
// at ready.
//
//	go test -run '^$' -bench RunStartToReady -count 5 ./cmd/depai
func BenchmarkRunStartToReady(b *testing.B) {
	for _, fl := range benchFleets {
		b.Run(fl.name, func(b *testing.B) {
			data := warmDataDir(b, fl.file)
			var rss float64
			for b.Loop() {
				p, _ := startBench(b, fl.file, data)
				b.StopTimer()
				rss += vmRSSMB(b, p.Process.Pid)
				stopRun(b, p)
				b.StartTimer()
			}
			b.ReportMetric(rss/float64(b.N), "rss-MB")
		})
	}
}

// BenchmarkRunIdleRSS measures the resident set of `depai run FILE` a second
// after its plugins have loaded (the target: ≤ 50 MB), and how long
// from exec the plugins took to load (plugins-loaded-ms).
//
//	go test -run '^$' -bench RunIdleRSS -count 5 ./cmd/depai
func BenchmarkRunIdleRSS(b *testing.B) {
	for _, fl := range benchFleets {
		b.Run(fl.name, func(b *testing.B) {
			data := warmDataDir(b, fl.file)
			var rss float64
			var loading time.Duration
			for b.Loop() {
				start := time.Now()
				p, loaded := startBench(b, fl.file, data)
				waitLoaded(b, loaded)
				loading += time.Since(start)
				time.Sleep(time.Second)
				rss += vmRSSMB(b, p.Process.Pid)
				stopRun(b, p)
			}
			b.ReportMetric(rss/float64(b.N), "idle-rss-MB")
			b.ReportMetric(float64(loading.Milliseconds())/float64(b.N), "plugins-loaded-ms")
		})
	}
}

// warmDataDir returns a data directory that depai run FILE has started on
// once, with its plugins loaded: memory, token and caches exist, as on every
// start but the first.
func warmDataDir(b *testing.B, file string) string {
	data := b.TempDir()
	p, loaded := startBench(b, file, data)
	waitLoaded(b, loaded)
	stopRun(b, p)
	return data
}

// waitLoaded waits for the plugins-loaded log line, failing the benchmark
// rather than hanging if it never comes.
func waitLoaded(b *testing.B, loaded <-chan struct{}) {
	select {
	case <-loaded:
	case <-time.After(5 * time.Minute):
		b.Fatal("depai run never logged that its plugins loaded")
	}
}

// startBench starts depai run and returns once it logged ready.
func startBench(b *testing.B, file, data string) (cmd *exec.Cmd, pluginsLoaded <-chan struct{}) {
	loaded := make(chan struct{})
	cmd = exec.Command(depaiBin, "run", file, "--data", data, "--addr", "127.0.0.1:0")
	// The caller's environment: its Go and plugin build caches stay warm,
	// as on a machine that has started the fleet before.
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var log strings.Builder
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "msg=ready") {
			// Keep draining so the process never blocks on a full pipe,
			// and tell when the plugins have loaded.
			go func() {
				for sc.Scan() {
					if strings.Contains(sc.Text(), `msg="plugins loaded"`) || strings.Contains(sc.Text(), "plugins not loaded") {
						close(loaded)
					}
				}
			}()
			return cmd, loaded
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	b.Fatalf("depai run exited before ready:\n%s", log.String())
	return nil, nil
}

func stopRun(b *testing.B, cmd *exec.Cmd) {
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("depai run after SIGINT: %v", err)
	}
}

// vmRSSMB reads the resident set of pid from /proc, in MB.
func vmRSSMB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// BenchmarkRunShutdown measures `depai run FILE` from SIGINT to the process
// having exited, fleet closed and memory flushed (the bound: 1 s).
//
//	go test -run '^$' -bench RunShutdown -count 5 ./cmd/depai
func BenchmarkRunShutdown(b *testing.B) {
	data := b.TempDir()
	for b.Loop() {
		b.StopTimer()
		p, _ := startBench(b, "testdata/fleet.yaml", data)
		b.StartTimer()
		stopRun(b, p)
	}
}
