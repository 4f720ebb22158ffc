// Package wasm is depai's sandboxed plugin transport: plugins are WASM
// modules (Go guests built as wasip1 reactors against depai/sdk) run by
// wazero. An artifact is compiled once per transport and memory limit, in
// a runtime of its own, and shared by every plugin loaded from it (several
// agents of a fleet, say); each plugin has a bounded pool of instances, one
// per concurrent call.
// A module sees no files, environment or sockets, and no real clock unless
// granted; its randomness is always the host's CSPRNG. Everything else goes
// through host_call, where the host's grants and policy decide.
//
// The ABI is documented in depai/sdk's main_wasip1.go, the guest side.
package wasm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/internal/interrupt"
	"github.com/depai/depai/internal/atomicfile"
	"github.com/depai/depai/sdk/wire"
)

// Config configures the transport.
type Config struct {
	// CacheDir keeps compiled machine code between runs, so a plugin starts
	// from the cache instead of being compiled again. It is created with
	// mode 0700. Empty: compile in memory only, shared by the plugins of
	// this Transport.
	CacheDir string
	// Logger receives the guests' stdout and stderr, tagged with the
	// plugin's name. Nil: slog.Default().
	Logger *slog.Logger
}

// Transport loads WASM plugins. It is safe for concurrent use.
type Transport struct {
	cache  wazero.CompilationCache
	logger *slog.Logger
	// rewrites keeps modules rewritten by package interrupt, by the digest
	// of the original: the rewrite costs more than reading its result.
	// Empty: rewrite at every load.
	rewrites string
	// mu guards modules, the compiled artifacts in use, and the loads in
	// flight and closed below. Lock order: a leaf.
	mu      sync.Mutex
	modules map[moduleKey]*module
	// loads counts Loads in flight. wazero's engine behind the cache
	// panics when it is closed under a compile, so Close leaves the cache
	// to the last of them.
	loads  int
	closed bool
}

// errClosed is a Load's error once Close was called.
var errClosed = errors.New("wasm: transport closed")

// moduleKey names a compiled artifact: its digest and its memory limit,
// which wazero sets per runtime.
type moduleKey struct {
	digest [sha256.Size]byte
	pages  uint32
}

// module is an artifact compiled in a runtime of its own (with WASI and the
// depai imports), shared by the plugins loaded from it.
type module struct {
	key      moduleKey
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	// interruptible: the code was rewritten by package interrupt, and the
	// runtime does not instrument it.
	interruptible bool
	// manifest is the module's wire.ManifestSection, or nil: then its
	// plugins are asked (describe).
	manifest []byte
	refs     int // plugins using it; guarded by Transport.mu
}

var _ host.Transport = (*Transport)(nil)

// New returns a transport. Close it to release the compilation cache.
func New(cfg Config) (*Transport, error) {
	t := &Transport{logger: cfg.Logger, modules: map[moduleKey]*module{}}
	if t.logger == nil {
		t.logger = slog.Default()
	}
	if cfg.CacheDir == "" {
		t.cache = wazero.NewCompilationCache()
		return t, nil
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: cache dir: %w", err)
	}
	// Compiled code is executable: nobody else may write it.
	if err := os.Chmod(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: cache dir: %w", err)
	}
	c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("wasm: cache dir %s: %w", cfg.CacheDir, err)
	}
	t.cache = c
	t.rewrites = filepath.Join(cfg.CacheDir, "interrupt-v"+strconv.Itoa(interrupt.Version))
	if err := os.MkdirAll(t.rewrites, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: cache dir: %w", err)
	}
	return t, nil
}

// Close releases the compilation cache. Plugins must be closed first. A
// Load in flight fails (and closes what it started), and the cache is
// released when the last one ends: a shutdown need not wait for a
// compile.
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	already, busy := t.closed, t.loads > 0
	t.closed = true
	t.mu.Unlock()
	if already || busy {
		return nil
	}
	return t.cache.Close(ctx)
}

// exports the depai ABI requires, with their signatures.
var exports = []struct {
	name            string
	params, results []api.ValueType
}{
	{"_initialize", nil, nil},
	{"abi_version", nil, []api.ValueType{api.ValueTypeI32}},
	{"alloc", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"call", []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	{"describe", nil, []api.ValueType{api.ValueTypeI64}},
}

// Load compiles (or fetches from the cache) the module at spec.Path, starts
// one instance, checks its ABI version and reads its manifest.
func (t *Transport) Load(ctx context.Context, spec host.LoadSpec) (host.Instance, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, errClosed)
	}
	t.loads++
	t.mu.Unlock()
	p, err := t.load(ctx, spec)
	t.mu.Lock()
	if t.closed && err == nil {
		t.mu.Unlock()
		_ = p.Close(ctx)
		p, err = nil, fmt.Errorf("plugin %q: %w", spec.Name, errClosed)
		t.mu.Lock()
	}
	t.loads--
	last := t.closed && t.loads == 0
	t.mu.Unlock()
	if last {
		_ = t.cache.Close(context.WithoutCancel(ctx))
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (t *Transport) load(ctx context.Context, spec host.LoadSpec) (*plugin, error) {
	code, err := os.ReadFile(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	if host.KindOf(code) != host.KindWASM {
		return nil, fmt.Errorf("plugin %q: %s is not a WASM module (no \\0asm header)", spec.Name, spec.Path)
	}
	if spec.Host == nil {
		return nil, fmt.Errorf("plugin %q: no host dispatcher in the load spec", spec.Name)
	}
	if len(spec.Grants.Files) > 0 || len(spec.Grants.Net) > 0 {
		return nil, fmt.Errorf("plugin %q: files and net grants confine process plugins; a WASM plugin has no files or sockets (it reaches the network through http.fetch)", spec.Name)
	}
	limits := spec.Limits.OrDefault()
	pages := limits.MemoryBytes / 65536
	if pages == 0 || pages > 65536 {
		return nil, fmt.Errorf("plugin %q: memory limit %d bytes: want 64 KiB to 4 GiB", spec.Name, limits.MemoryBytes)
	}
	m, err := t.acquire(ctx, spec.Name, spec.Path, code, uint32(pages))
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	p := &plugin{
		name:   spec.Name,
		t:      t,
		mod:    m,
		grants: spec.Grants,
		limits: limits,
		disp:   spec.Host,
		logger: t.logger.With("plugin", spec.Name),
		output: host.NewOutputLimiter(float64(limits.OutputBytes), t.logger.With("plugin", spec.Name)),
		sem:    make(chan struct{}, limits.Concurrency),
		idle:   make(chan *instance, limits.Concurrency),
	}
	p.startCtx, p.stopStart = context.WithCancel(context.Background())
	if err := p.start(ctx, cmp.Or(spec.InitTimeout, defaultInitTimeout)); err != nil {
		p.stopStart()
		_ = t.release(ctx, m)
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	if p.manifest.Run {
		p.startRun()
	}
	return p, nil
}

// defaultInitTimeout bounds _initialize and describe when the load spec
// sets no InitTimeout.
const defaultInitTimeout = 30 * time.Second

// acquire returns the compiled module for code with a memory limit of
// pages, compiling it unless a plugin already uses it.
func (t *Transport) acquire(ctx context.Context, name, path string, code []byte, pages uint32) (*module, error) {
	key := moduleKey{sha256.Sum256(code), pages}
	t.mu.Lock()
	if m, ok := t.modules[key]; ok {
		m.refs++
		t.mu.Unlock()
		return m, nil
	}
	t.mu.Unlock()
	// Deadlines: the module is rewritten to check an interrupt flag at
	// loop heads (see package interrupt); one it cannot rewrite gets
	// wazero's own check, which is several times slower.
	m := &module{key: key, interruptible: true, refs: 1}
	manifest, err := customSection(code, wire.ManifestSection)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid WASM module: %w", path, err)
	}
	m.manifest = manifest
	if inst, err := t.instrument(key, code); err == nil {
		code = inst
	} else if errors.Is(err, interrupt.ErrUnsupported) {
		m.interruptible = false
		t.logger.Info("plugin uses a WASM feature the interrupt rewrite does not know; its deadlines use wazero's slower check", "plugin", name, "err", err)
	} else {
		return nil, fmt.Errorf("%s: invalid WASM module: %w", path, err)
	}
	m.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(t.cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(!m.interruptible))
	err = instantiateWASI(ctx, m.rt)
	if err == nil {
		err = instantiateHostModule(ctx, m.rt)
	}
	if err == nil {
		if m.compiled, err = m.rt.CompileModule(ctx, code); err != nil {
			err = fmt.Errorf("%s: invalid WASM module: %w", path, err)
		}
	}
	if err == nil {
		if err = checkExports(m.compiled); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		_ = m.rt.Close(ctx)
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if other, ok := t.modules[key]; ok { // a concurrent load won the race
		other.refs++
		_ = m.rt.Close(ctx)
		return other, nil
	}
	t.modules[key] = m
	return m, nil
}

// instrument returns code rewritten by package interrupt, from the cache
// when it holds the rewrite. The cache directory is the transport's own
// (0700, like the machine code beside it), so what it holds is trusted.
func (t *Transport) instrument(key moduleKey, code []byte) ([]byte, error) {
	if t.rewrites == "" {
		return interrupt.Instrument(code)
	}
	path := filepath.Join(t.rewrites, hex.EncodeToString(key.digest[:])+".wasm")
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	}
	out, err := interrupt.Instrument(code)
	if err != nil {
		return nil, err
	}
	// Written whole and renamed into place; a cache that cannot be
	// written only costs the next load the rewrite again.
	_ = atomicfile.Write(path, out)
	return out, nil
}

// release drops a plugin's use of m; the last one closes its runtime.
func (t *Transport) release(ctx context.Context, m *module) error {
	t.mu.Lock()
	m.refs--
	last := m.refs == 0
	if last {
		delete(t.modules, m.key)
	}
	t.mu.Unlock()
	if !last {
		return nil
	}
	return m.rt.Close(ctx)
}

func (p *plugin) start(ctx context.Context, initTimeout time.Duration) error {
	// From here on the plugin's own code runs: its init() and describe
	// get initTimeout, and a module that overstays is stopped.
	ctx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	initErr := func(err error) error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("did not finish initialising within %v (does its init() return?): %w", initTimeout, err)
		}
		return err
	}
	p.sem <- struct{}{}
	inst, err := p.newInstance(ctx)
	if err != nil {
		<-p.sem
		return initErr(err)
	}
	defer func() { p.put(inst, !inst.spent) }()
	v, err := inst.abiVersion(ctx)
	if err != nil {
		return initErr(fmt.Errorf("abi_version: %w", err))
	}
	if v != wire.ABIVersion {
		return fmt.Errorf("speaks plugin ABI %d; this agent speaks ABI %d", v, wire.ABIVersion)
	}
	if p.mod.manifest != nil {
		// Built by `depai plugin build`: the manifest the build read from
		// the plugin travels in the module, and the plugin is not asked.
		if err := json.Unmarshal(p.mod.manifest, &p.manifest); err != nil {
			return fmt.Errorf("%s section: manifest is not valid JSON: %w", wire.ManifestSection, err)
		}
		return nil
	}
	m, err := inst.describe(ctx, p.limits.MaxMessageBytes)
	if err != nil {
		return initErr(fmt.Errorf("describe: %w", err))
	}
	p.manifest = m
	return nil
}

func checkExports(c wazero.CompiledModule) error {
	fns := c.ExportedFunctions()
	var missing, wrong []string
	for _, e := range exports {
		def, ok := fns[e.name]
		switch {
		case !ok:
			missing = append(missing, e.name)
		case !slices.Equal(def.ParamTypes(), e.params) || !slices.Equal(def.ResultTypes(), e.results):
			wrong = append(wrong, e.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not a depai plugin: it lacks the exports %v (build it against github.com/depai/depai/sdk with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared)", missing)
	}
	if len(wrong) > 0 {
		return fmt.Errorf("not a depai plugin: exports %v have the wrong signature for the depai ABI", wrong)
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return errors.New("not a depai plugin: it exports no memory")
	}
	return nil
}
