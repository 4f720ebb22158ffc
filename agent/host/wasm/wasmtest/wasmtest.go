// Package wasmtest builds Go plugin packages to WASM reactors for tests —
// with agent/host/build, cached by content hash across runs and built once
// per test binary — and runs them in a real host.
//
//	h := wasmtest.NewHost(t, host.Config{})
//	p, err := h.Load(ctx, host.PluginSpec{Name: "hello", Path: wasmtest.Build(t, "../hello")})
package wasmtest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/agent/host/wasm/internal/wasmbuild"
	"github.com/depai/depai/memory"
)

// Build compiles the Go package in pkgDir with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared and returns the module's path.
func Build(tb testing.TB, pkgDir string) string {
	tb.Helper()
	return wasmbuild.Build(tb, pkgDir)
}

// NewHost returns a real plugin host with the WASM transport (with a
// compilation cache shared by test runs, like GOCACHE) and, unless cfg has one, a
// badger memory store in a temp dir. Everything is closed when tb ends.
func NewHost(tb testing.TB, cfg host.Config) *host.Host {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tr, err := wasm.New(wasm.Config{CacheDir: wasmbuild.CacheDir(), Logger: cfg.Logger})
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

// CacheDir is the compilation and build cache shared by test runs on this
// machine (like GOCACHE).
func CacheDir() string { return wasmbuild.CacheDir() }
