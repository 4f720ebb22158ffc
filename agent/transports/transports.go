// Package transports makes the plugin transports a fleet starts plugins
// through (agent.Options.NewTransports): WASM in wazero, and native
// processes under go-plugin. They live here, not in package agent, so that a
// program whose agents load no plugin, or plugins of one kind only, does
// not link the other's stack: wazero, or gRPC, protobuf and go-plugin, whose
// package initialisation every start of the program pays.
package transports

import (
	"log/slog"
	"path/filepath"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"
)

// Default makes both transports: WASM, with its compiled code cached in
// cacheDir/wasm, and process. A program that needs one only makes it
// itself (wasm.New, process.New) and links only that one's stack.
func Default(cacheDir string, log *slog.Logger) (map[string]host.Transport, error) {
	w, err := wasm.New(wasm.Config{CacheDir: filepath.Join(cacheDir, "wasm"), Logger: log})
	if err != nil {
		return nil, err
	}
	return map[string]host.Transport{host.KindWASM: w, host.KindProcess: process.New(process.Config{Logger: log})}, nil
}
