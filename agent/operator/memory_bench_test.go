package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
)

// sequentialWriter is the put as it was before AuthorizeWrite, for
// comparison: the decision's audit record, the put and the outcome's audit
// record, three commits one after the other.
type sequentialWriter struct {
	engine *policy.Engine
	db     *memory.DB
}

func (s sequentialWriter) AuthorizeWrite(ctx context.Context, a policy.Action, w memory.Write) (memory.Written, error) {
	done, err := s.engine.Authorize(ctx, a)
	if err != nil {
		return memory.Written{}, err
	}
	recs, first, err := s.db.PutOnce(ctx, w.Key, w.Recs...)
	res, _ := json.Marshal(map[string]any{"first": first})
	done(res, err)
	return memory.Written{Recs: recs, First: first}, err
}

// BenchmarkPutAPI is acknowledged puts through the operator API: 32 clients
// on keep-alive connections, each put with its own Idempotency-Key,
// durable (fsync) with its audit records before the answer.
func BenchmarkPutAPI(b *testing.B) {
	for _, path := range []string{"one-commit", "sequential"} {
		b.Run("path="+path, func(b *testing.B) {
			var commits, records atomic.Int64
			var took atomic.Int64
			f := openMemoryFixtureWith(b, memory.Config{Dir: b.TempDir() + "/memory", OnCommit: func(c memory.CommitInfo) {
				commits.Add(1)
				records.Add(int64(c.Records))
				took.Add(int64(c.Took))
			}})
			defer f.close(b)
			if path == "sequential" {
				srv, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: newScriptedFleet("a").Agents(), Operators: putOperators, Memory: sequentialWriter{f.engine, f.db}})
				if err != nil {
					b.Fatal(err)
				}
				go srv.Serve()
				defer srv.Shutdown(context.Background())
				f.srv = srv
			}
			benchPuts(b, f.srv, 32)
			if n := commits.Load(); n > 0 {
				b.ReportMetric(float64(records.Load())/float64(n), "records/commit")
				b.ReportMetric(float64(took.Load())/float64(n)/1e6, "ms/commit")
			}
		})
	}
}

func benchPuts(b *testing.B, srv *operator.Server, clients int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	url := "http://" + srv.Addr() + "/v1/memory/fleet/site-a"
	var next atomic.Int64
	var failed atomic.Value
	body := `{"kind":"observation","text":"pallet 17 at rack B2, level 3","tags":["site:a"]}`
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				req, _ := http.NewRequest("POST", url, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Idempotency-Key", fmt.Sprintf("c%d-%d", c, i))
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Store(resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if v := failed.Load(); v != nil {
		b.Fatalf("a put failed: %v", v)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "puts/s")
	// CPU per put, the process's (server and client) user and system time:
	// unlike puts/s it hardly depends on what else the machine runs.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/put")
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
