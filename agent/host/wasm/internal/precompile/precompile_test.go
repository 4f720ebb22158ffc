package precompile

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
)

func TestPrecompile(t *testing.T) {
	cache, modules := os.Getenv("DEPAI_PRECOMPILE_CACHE"), os.Getenv("DEPAI_PRECOMPILE_MODULES")
	if cache == "" || modules == "" {
		t.Skip("nothing to precompile: DEPAI_PRECOMPILE_CACHE or DEPAI_PRECOMPILE_MODULES is unset")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := wasm.New(wasm.Config{CacheDir: cache, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer tr.Close(ctx)
	h := host.New(host.Config{Logger: quiet})
	for _, path := range filepath.SplitList(modules) {
		// Modules that are not valid plugins are compiled all the same
		// before Load refuses them; their errors are the tests' business.
		if inst, err := tr.Load(ctx, host.LoadSpec{Name: path, Path: path, Host: h}); err == nil {
			_ = inst.Close(ctx)
		}
	}
}
