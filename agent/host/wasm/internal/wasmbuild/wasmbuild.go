// Package wasmbuild compiles Go packages to WASM reactors for tests, with
// agent/host/build (cached by content hash across runs) and once per test
// binary. wasmtest is its public face; the wasm package's own benchmarks use
// it directly, since they cannot import wasmtest.
package wasmbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/depai/depai/agent/host/build"
)

var (
	mu    sync.Mutex
	built = map[string]string{} // package dir → artifact
)

// CacheDir is a directory shared by every test run on this machine (like
// GOCACHE): it holds the compilation cache — wazero keys entries by module
// digest and its own version, so a module is compiled once, not in every
// test binary and fuzz worker — and, under plugins/, the built modules.
func CacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "depai", "wasmtest")
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
	res, err := build.Plugin(context.Background(), build.Options{Dir: abs, CacheDir: filepath.Join(CacheDir(), "plugins")})
	if err != nil {
		tb.Fatalf("wasmtest: %v", err)
	}
	if raceEnabled {
		// Compile outside the race detector, into the shared cache.
		pre := exec.Command("go", "test", "-count=1", "-run=TestPrecompile", "github.com/depai/depai/agent/host/wasm/internal/precompile")
		pre.Dir = abs
		pre.Env = append(os.Environ(), "DEPAI_PRECOMPILE_CACHE="+CacheDir(), "DEPAI_PRECOMPILE_MODULES="+res.Path)
		if b, err := pre.CombinedOutput(); err != nil {
			tb.Fatalf("wasmtest: precompile %s: %v\n%s", pkgDir, err, b)
		}
	}
	built[abs] = res.Path
	return res.Path
}
