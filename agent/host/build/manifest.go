package build

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/depai/depai/sdk/wire"
)

// SectionTag is the build tag of the module a WASM build ships: the SDK
// then derives no schemas in the guest (sdk/schemas_section.go), since its
// manifest travels in wire.ManifestSection.
const SectionTag = "depai_section_manifest"

// describeTimeout bounds running a plugin's init() and describe at build
// time; a plugin that overstays is shipped as built, describing itself at
// load, where the host's own init timeout reports it. It is long because
// the interpreter is slow and a build's output must not depend on the
// machine's load: a Go guest's init takes ~1 s here, and over 10 s in a
// -race test binary on 2 busy cores, where a 10 s bound shipped the module
// without its section (the clean-clone CI's TestGuestDecodes).
const describeTimeout = 2 * time.Minute

// describe runs module — a plugin built without SectionTag — in wazero's
// interpreter (nothing is compiled to machine code: it runs once) with no
// files, environment, clock or host capabilities, and returns what its
// describe export answers: the manifest, schemas derived in the guest; and
// what its describe_codecs export answers, if it has one: the Go source of
// codecs for its tools' types (sdk/internal/codecgen), or nothing.
func describe(ctx context.Context, module []byte) (manifest, codecs []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCloseOnContextDone(true))
	defer rt.Close(context.Background())
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, nil, err
	}
	i32 := api.ValueTypeI32
	// A plugin's init() may log; it gets no host capability here.
	denied := []byte(`{"code":"unavailable","message":"no host capabilities while a plugin is described at build time"}`)
	_, err = rt.NewHostModuleBuilder("depai").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, stack []uint64) {
			if uint32(stack[5]) >= uint32(len(denied)) {
				mod.Memory().Write(uint32(stack[4]), denied)
			}
			stack[0] = uint64(len(denied)) | 1<<32
		}), []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{api.ValueTypeI64}).
		Export("host_call").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, stack []uint64) {
			n := min(len(denied), int(uint32(stack[1])))
			mod.Memory().Write(uint32(stack[0]), denied[:n])
			stack[0] = uint64(n)
		}), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		Export("host_result").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), []api.ValueType{i32, i32}, nil).
		Export("log").
		Instantiate(ctx)
	if err != nil {
		return nil, nil, err
	}
	mod, err := rt.InstantiateWithConfig(ctx, module, wazero.NewModuleConfig().
		WithName("").WithStartFunctions("_initialize").WithStdout(io.Discard).WithStderr(io.Discard))
	if err != nil {
		return nil, nil, err
	}
	if manifest, err = callResult(ctx, mod, "describe"); err != nil {
		return nil, nil, err
	}
	if !json.Valid(manifest) {
		return nil, nil, errors.New("describe answered with invalid JSON")
	}
	if mod.ExportedFunction("describe_codecs") != nil {
		// A plugin that cannot describe its codecs ships with the
		// reflective codec alone; that is no reason to fail its build.
		codecs, _ = callResult(ctx, mod, "describe_codecs")
	}
	return manifest, codecs, nil
}

// callResult calls an export that answers as a call does (ptr<<32 | len, a
// first byte 0 and the payload) and returns a copy of the payload.
func callResult(ctx context.Context, mod api.Module, name string) ([]byte, error) {
	fn := mod.ExportedFunction(name)
	if fn == nil {
		return nil, fmt.Errorf("no %s export", name)
	}
	res, err := fn.Call(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	out, ok := mod.Memory().Read(ptr, n)
	if !ok || n == 0 || out[0] != 0 {
		return nil, fmt.Errorf("%s did not answer", name)
	}
	return append([]byte(nil), out[1:]...), nil
}

// appendSection appends a custom section (id 0) to a WASM module; custom
// sections may stand anywhere, and the runtime ignores them.
func appendSection(module []byte, name string, payload []byte) []byte {
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(body, name...)
	body = append(body, payload...)
	module = append(module, 0)
	module = binary.AppendUvarint(module, uint64(len(body)))
	return append(module, body...)
}

// codecFile is the name the generated codecs take in the plugin's package
// (only in the build's overlay, never in the plugin's directory).
const codecFile = "zz_depai_codecs.go"

// sectioned builds the WASM module a plugin ships: built with SectionTag,
// with the manifest its build without the tag (at full) describes in
// wire.ManifestSection, and with the codecs it generated for its tools'
// types compiled in (added to its package by an overlay, so nothing is
// written to the plugin's directory). ok is false when the plugin could not
// be described here; then the module at full is what ships.
func sectioned(ctx context.Context, opts Options, dir, full string) (module []byte, ok bool, err error) {
	code, err := os.ReadFile(full)
	if err != nil {
		return nil, false, err
	}
	manifest, codecs, derr := describe(ctx, code)
	if derr != nil {
		opts.Logger.Warn("build: the plugin could not be described at build time; it ships without its manifest section, and the host asks it for its manifest at every start", "dir", opts.Dir, "err", derr)
		return nil, false, nil
	}
	lean := full + ".section"
	defer os.Remove(lean)
	built := false
	if len(codecs) > 0 {
		if _, err := os.Stat(filepath.Join(dir, codecFile)); errors.Is(err, fs.ErrNotExist) {
			overlay, err := writeOverlay(full, dir, codecs)
			if err != nil {
				return nil, false, err
			}
			defer os.Remove(overlay)
			defer os.Remove(overlay + ".go")
			// Code generated for types the plugin's package cannot name
			// (a type declared inside a function, say) does not compile;
			// then the plugin ships with the reflective codec alone.
			if err := runGo(ctx, opts, dir, lean, "-overlay="+overlay, "-tags="+SectionTag); err != nil {
				opts.Logger.Warn("build: the codecs generated for the plugin's tool types do not compile; it ships with the reflective codec (slower calls)", "dir", opts.Dir, "err", err)
			} else {
				built = true
			}
		}
	}
	if !built {
		if err := runGo(ctx, opts, dir, lean, "-tags="+SectionTag); err != nil {
			return nil, false, err
		}
	}
	code, err = os.ReadFile(lean)
	if err != nil {
		return nil, false, fmt.Errorf("build: %w", err)
	}
	return appendSection(code, wire.ManifestSection, manifest), true, nil
}

// writeOverlay writes the generated codecs beside full and a go build
// overlay that adds them to the package in dir; it returns the overlay's
// path (the source is that path with ".go" appended).
func writeOverlay(full, dir string, codecs []byte) (string, error) {
	overlay := full + ".overlay"
	if err := os.WriteFile(overlay+".go", codecs, 0o600); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(dir, codecFile): overlay + ".go"}})
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	if err := os.WriteFile(overlay, b, 0o600); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	return overlay, nil
}
