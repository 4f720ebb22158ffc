// Package wasmtest builds Go plugin packages to WASM reactors for tests,
// once per test binary.
//
//	func TestMain(m *testing.M) { os.Exit(wasmtest.Run(m)) }
//
//	path := wasmtest.Build(t, "../../examples/plugins/hello")
package wasmtest

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
