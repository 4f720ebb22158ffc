package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

// chaosPlugin is the real process plugin the tests load, built once by
// TestMain from sdk/internal/native/testdata/chaosplugin.
var chaosPlugin string

// Re-exec modes of the test binary.
const (
	envAgent = "DEPAI_PROCESS_TEST_AGENT" // be an agent that loads the plugin at this path
	envEcho  = "DEPAI_PROCESS_TEST_ECHO"  // be the far end of the pipe ping-pong benchmark
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envAgent); path != "" {
		os.Exit(runAgent(path))
	}
	if path := os.Getenv(envSimbotAgent); path != "" {
		os.Exit(runSimbotAgent(path))
	}
	if forbidden := os.Getenv(envLaunched); forbidden != "" {
		reportLaunched(forbidden)
		os.Exit(0)
	}
	if os.Getenv(envEcho) != "" {
		_, _ = io.Copy(os.Stdout, os.Stdin)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "process-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	chaosPlugin = filepath.Join(dir, "chaos")
	build := exec.Command("go", "build", "-o", chaosPlugin, "github.com/depai/depai/sdk/internal/native/testdata/chaosplugin")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build chaos plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runAgent is the "agent" the no-orphans test SIGKILLs: it loads the plugin,
// prints the plugin's pid and waits to be killed.
func runAgent(path string) int {
	in, err := New(Config{}).Load(context.Background(), host.LoadSpec{Name: "chaos", Path: path})
	if err != nil {
		fmt.Println("load:", err)
		return 1
	}
	res := in.Call(context.Background(), wire.Call{Method: "pid"})
	if res.Error != nil {
		fmt.Println("pid:", res.Error)
		return 1
	}
	fmt.Printf("plugin pid %d\n", PID(in))
	time.Sleep(time.Minute)
	return 0
}

// recorder is a slog.Handler that keeps every record, for asserting what a
// plugin's output turned into.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]string
	attrs []slog.Attr
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), recs: new([]string)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{mu: r.mu, recs: r.recs, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	*r.recs = append(*r.recs, b.String())
	r.mu.Unlock()
	return nil
}

// waitFor waits until a record contains all of parts.
func (r *recorder) waitFor(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, rec := range *r.recs {
			if containsAll(rec, parts...) {
				r.mu.Unlock()
				return rec
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no log record with %q; have:\n%s", parts, strings.Join(*r.recs, "\n"))
	return ""
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
