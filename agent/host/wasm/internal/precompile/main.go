// Command precompile fills a WASM compilation cache: it loads each module
// given as an argument through the wasm transport, so the machine code of
// each lands in the cache dir. Tests built with -race use it, because the
// race detector slows wazero's compiler tenfold while the cached code runs
// just as fast.
//
//	go run ./agent/host/wasm/internal/precompile -cache DIR a.wasm b.wasm
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "precompile:", err)
		os.Exit(1)
	}
}

func run() error {
	cache := flag.String("cache", "", "compilation cache directory")
	flag.Parse()
	if *cache == "" {
		return fmt.Errorf("-cache is required")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := wasm.New(wasm.Config{CacheDir: *cache, Logger: quiet})
	if err != nil {
		return err
	}
	ctx := context.Background()
	defer tr.Close(ctx)
	h := host.New(host.Config{Logger: quiet})
	for _, path := range flag.Args() {
		// Modules that are not valid plugins are compiled all the same
		// before Load refuses them; their errors are the tests' business.
		if inst, err := tr.Load(ctx, host.LoadSpec{Name: path, Path: path, Host: h}); err == nil {
			_ = inst.Close(ctx)
		}
	}
	return nil
}
