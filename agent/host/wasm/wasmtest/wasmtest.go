// Package wasmtest builds Go plugin packages to WASM reactors for tests,
// once per test binary, and runs them in a real host.
//
//	func TestMain(m *testing.M) { os.Exit(wasmtest.Run(m)) }
//
//	path := wasmtest.Build(t, "../../examples/plugins/hello")
package wasmtest

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

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/memory"
)

var (
	mu    sync.Mutex
	dir   string            // set by Run; artifacts live here for the whole binary
	built map[string]string // package dir → artifact
)

// Run runs the tests with a build directory that is removed afterwards.
func Run(m *testing.M) int {
	d, err := os.MkdirTemp("", "depai-wasmtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasmtest:", err)
		return 1
	}
	mu.Lock()
	dir, built = d, map[string]string{}
	mu.Unlock()
	defer os.RemoveAll(d)
	return m.Run()
}

// Build compiles the Go package in pkgDir with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared and returns the module's path. Under Run each package
// is built once per test binary; otherwise into tb's temp dir.
func Build(tb testing.TB, pkgDir string) string {
	tb.Helper()
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		tb.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[abs]; ok {
		return p
	}
	out := tb.TempDir()
	if dir != "" {
		out = dir
	}
	path := filepath.Join(out, strings.ReplaceAll(strings.Trim(abs, string(filepath.Separator)), string(filepath.Separator), "_")+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", path, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("wasmtest: build %s: %v\n%s", pkgDir, err, b)
	}
	if built != nil {
		built[abs] = path
	}
	return path
}

// NewHost returns a real plugin host with the WASM transport (sharing one
// compilation cache per test binary under Run) and a badger memory store in
// a temp dir. Everything is closed when tb ends.
func NewHost(tb testing.TB, cfg host.Config) *host.Host {
	tb.Helper()
	mu.Lock()
	cache := tb.TempDir()
	if dir != "" {
		cache = filepath.Join(dir, "cache")
	}
	mu.Unlock()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tr, err := wasm.New(wasm.Config{CacheDir: cache, Logger: cfg.Logger})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Store == nil {
		store, err := memory.Open(context.Background(), memory.Config{Dir: tb.TempDir()})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = store.Close() })
		cfg.Store = store
	}
	cfg.Transports = map[string]host.Transport{host.KindWASM: tr}
	h := host.New(cfg)
	tb.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			tb.Error(err)
		}
		_ = tr.Close(context.Background())
	})
	return h
}
