package process

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

// BenchmarkCallCPU is a process plugin call (100 B JSON in and out) alone,
// reporting what each side spends per call from the kernel's scheduler
// statistics: CPU time, and how many times one of its threads was put on a
// CPU — every wake-up of a thread costs a scheduling delay on a busy
// machine, so that count, unlike latency, hardly depends on the load. A
// bare pipe round trip is one run on each side.
func BenchmarkCallCPU(b *testing.B) {
	ctx := context.Background()
	in, err := New(quietConfig()).Load(ctx, host.LoadSpec{Name: "bench", Path: chaosPlugin})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close(ctx)
	call := wire.Call{Method: "echo", Payload: payload100, CallID: "b"}
	for range 100 {
		in.Call(ctx, call)
	}
	pid := PID(in)
	hcpu0, hruns0 := schedStat(b, os.Getpid())
	pcpu0, pruns0 := schedStat(b, pid)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if res := in.Call(ctx, call); res.Error != nil || !bytes.Equal(res.Payload, payload100) {
			b.Fatalf("echo = %s, %v", res.Payload, res.Error)
		}
	}
	b.StopTimer()
	hcpu1, hruns1 := schedStat(b, os.Getpid())
	pcpu1, pruns1 := schedStat(b, pid)
	n := float64(b.N)
	b.ReportMetric(float64((hcpu1-hcpu0).Nanoseconds())/1e3/n, "host-cpu-µs/op")
	b.ReportMetric(float64((pcpu1-pcpu0).Nanoseconds())/1e3/n, "plugin-cpu-µs/op")
	b.ReportMetric(float64(hruns1-hruns0)/n, "host-runs/op")
	b.ReportMetric(float64(pruns1-pruns0)/n, "plugin-runs/op")
}

// schedStat sums /proc/<pid>/task/*/schedstat: time on a CPU and the
// number of times a thread was scheduled in.
func schedStat(b *testing.B, pid int) (time.Duration, int64) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		b.Skipf("no scheduler statistics: %v", err)
	}
	var ns, runs int64
	for _, t := range tasks {
		s, err := os.ReadFile(dir + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(s))
		if len(f) < 3 {
			b.Fatalf("%s/schedstat: %q", t.Name(), s)
		}
		a, _ := strconv.ParseInt(f[0], 10, 64)
		c, _ := strconv.ParseInt(f[2], 10, 64)
		ns += a
		runs += c
	}
	return time.Duration(ns), runs
}
