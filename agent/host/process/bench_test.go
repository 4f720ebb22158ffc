package process

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

// payload100 is a 100-byte JSON document, the size the figures use.
var payload100 = json.RawMessage(`{"q":"` + strings.Repeat("x", 100-8) + `"}`)

func quietConfig() Config {
	c := testConfig(newRecorder())
	c.MemoryLimit = 0
	return c
}

// BenchmarkCallVsPipe measures a process plugin call (100 B JSON in and
// out over the call socket) and, interleaved in the same run, a bare 100 B
// ping-pong over pipes with a child process — the floor any process
// transport pays — and a gRPC unary call to the same plugin (go-plugin's
// health check, which does no work): what a gRPC call path would cost at
// the least. It reports the medians and the call/pipe ratio.
func BenchmarkCallVsPipe(b *testing.B) {
	in, err := New(quietConfig()).Load(context.Background(), host.LoadSpec{Name: "bench", Path: chaosPlugin})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close(context.Background())
	echo := exec.Command(os.Args[0], "-test.run=^$")
	echo.Env = append(os.Environ(), envEcho+"=1")
	w, err := echo.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	r, err := echo.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := echo.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { w.Close(); echo.Wait() }()

	health := grpc_health_v1.NewHealthClient(in.(*instance).cur.conn)
	hreq := &grpc_health_v1.HealthCheckRequest{Service: "plugin"}

	call := wire.Call{Method: "echo", Payload: payload100, CallID: "b"}
	buf := make([]byte, len(payload100))
	calls := make([]time.Duration, 0, b.N)
	pipes := make([]time.Duration, 0, b.N)
	grpcs := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res := in.Call(ctx, call)
		t1 := time.Now()
		if res.Error != nil || !bytes.Equal(res.Payload, payload100) {
			b.Fatalf("echo = %s, %v", res.Payload, res.Error)
		}
		if _, err := w.Write(payload100); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := health.Check(ctx, hreq); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		calls = append(calls, t1.Sub(t0))
		pipes = append(pipes, t2.Sub(t1))
		grpcs = append(grpcs, t3.Sub(t2))
	}
	b.StopTimer()
	c, p := median(calls), median(pipes)
	b.ReportMetric(float64(c.Nanoseconds())/1e3, "call-p50-µs")
	b.ReportMetric(float64(p.Nanoseconds())/1e3, "pipe-p50-µs")
	b.ReportMetric(float64(median(grpcs).Nanoseconds())/1e3, "grpc-p50-µs")
	b.ReportMetric(float64(c)/float64(p), "call/pipe")
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkStartToFirstCall is exec, handshake, manifest and one call.
func BenchmarkStartToFirstCall(b *testing.B) {
	t := New(quietConfig())
	ctx := context.Background()
	for range b.N {
		in, err := t.Load(ctx, host.LoadSpec{Name: "bench", Path: chaosPlugin})
		if err != nil {
			b.Fatal(err)
		}
		if res := in.Call(ctx, wire.Call{Method: "echo", Payload: payload100}); res.Error != nil {
			b.Fatal(res.Error)
		}
		b.StopTimer()
		in.Close(ctx)
		b.StartTimer()
	}
}

// BenchmarkRSS reports the resident memory of one idle process plugin
// after a few calls.
func BenchmarkRSS(b *testing.B) {
	ctx := context.Background()
	in, err := New(quietConfig()).Load(ctx, host.LoadSpec{Name: "bench", Path: chaosPlugin})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close(ctx)
	for range b.N {
		if res := in.Call(ctx, wire.Call{Method: "echo", Payload: payload100}); res.Error != nil {
			b.Fatal(res.Error)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rssKB(b, PID(in)))/1024, "rss-MB")
}

func rssKB(b *testing.B, pid int) int {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
