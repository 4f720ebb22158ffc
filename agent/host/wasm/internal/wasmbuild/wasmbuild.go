// Package wasmbuild compiles Go packages to WASM reactors for tests, once
// per test binary. wasmtest is its public face; the wasm package's own
// benchmarks use it directly, since they cannot import wasmtest.
package wasmbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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

// Dir is the directory Run made, or tb's temp dir without Run.
func Dir(tb testing.TB) string {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		return dir
	}
	return tb.TempDir()
}

// CacheDir is a compilation cache shared by every test run on this machine
// (like GOCACHE): wazero keys entries by module digest and its own version,
// so a module is compiled once, not in every test binary and fuzz worker.
func CacheDir(tb testing.TB) string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "depai", "wasmtest")
	}
	return filepath.Join(Dir(tb), "cache")
}

// Build compiles the Go package in pkgDir with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared and returns the module's path.
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
	out := dir
	if out == "" {
		out = tb.TempDir()
	}
	path := filepath.Join(out, strings.ReplaceAll(strings.Trim(abs, string(filepath.Separator)), string(filepath.Separator), "_")+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", path, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("wasmtest: build %s: %v\n%s", pkgDir, err, b)
	}
	if raceEnabled {
		// Compile outside the race detector, into the shared cache.
		pre := exec.Command("go", "test", "-count=1", "-run=TestPrecompile", "github.com/depai/depai/agent/host/wasm/internal/precompile")
		pre.Dir = abs
		pre.Env = append(os.Environ(), "DEPAI_PRECOMPILE_CACHE="+CacheDir(tb), "DEPAI_PRECOMPILE_MODULES="+path)
		if b, err := pre.CombinedOutput(); err != nil {
			tb.Fatalf("wasmtest: precompile %s: %v\n%s", pkgDir, err, b)
		}
	}
	if built != nil {
		built[abs] = path
	}
	return path
}
