package wasm

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/wasm/internal/interrupt"
	"github.com/depai/depai/sdk/wire"
)

// plugin is one loaded WASM plugin: its compiled module and pool.
type plugin struct {
	name     string
	t        *Transport
	mod      *module
	grants   wire.Capabilities
	limits   host.Limits
	disp     host.Dispatcher
	logger   *slog.Logger
	output   *host.OutputLimiter // shared by every instance's stdout and stderr
	manifest wire.Manifest

	// sem bounds the instances alive (idle or in a call); idle holds those
	// ready for the next call.
	sem    chan struct{}
	idle   chan *instance
	closed atomic.Bool

	// stopRun ends the run hook's instance (see startRun); running is done
	// when it has stopped.
	stopRun context.CancelFunc
	running sync.WaitGroup

	// startMu orders starting a replenisher or a call against Close: none
	// starts once closed is set, and Close waits for those started
	// (starting, calls) before it closes the runtime they run in — machine
	// code must not be released under a running guest. Lock order: a leaf.
	startMu  sync.Mutex
	starting sync.WaitGroup
	calls    sync.WaitGroup
	// startCtx bounds the replenishers and the calls; Close cancels it
	// (stopStart), which interrupts the guests in calls.
	startCtx  context.Context
	stopStart context.CancelFunc
}

var (
	_ host.Instance = (*plugin)(nil)
	_ host.Confined = (*plugin)(nil)
)

// Confinement is what the sandbox enforces; it depends on no kernel feature.
func (p *plugin) Confinement() host.Confinement {
	clock := "clock: a fixed epoch (2022-01-01, 1ms per reading); sleep returns at once"
	if p.grants.Clock {
		clock = "clock: real (granted); sleep ends with the call"
	}
	return host.Confinement{Enforced: []string{
		"no files, environment or sockets (WASM sandbox)",
		fmt.Sprintf("memory: %d MiB of linear memory", p.limits.MemoryBytes>>20),
		fmt.Sprintf("each call stopped at its deadline (at most %v); the instance is discarded", p.limits.CallTimeout),
		clock,
		"randomness: the host's CSPRNG",
		"host calls: only what the grants allow, rate-limited",
	}}
}

// instance is one module instance; it runs one call at a time.
type instance struct {
	p     *plugin
	mod   api.Module
	mem   api.Memory
	alloc api.Function
	call  api.Function
	// inPtr/inCap: the request buffer alloc returned, reused while it fits.
	inPtr, inCap uint32
	// pending is a host_call result too large for the guest's buffer,
	// waiting for host_result.
	pending []byte
	// ctx is the current call's context, for host functions that block.
	ctx    context.Context
	stderr *tail
	stack  [2]uint64
	// flag is the module's interrupt global (nil when the runtime checks
	// the context itself); spent says it was raised, so the instance must go.
	flag  api.MutableGlobal
	spent bool
}

type instanceKey struct{}

func (p *plugin) Manifest() wire.Manifest { return p.manifest }

// Call runs one method in an idle instance (or a new one when all are busy
// and the pool has room). The instance is discarded after any trap, exit,
// missed deadline or malformed result, so the next call starts clean.
func (p *plugin) Call(ctx context.Context, c wire.Call) wire.Result {
	p.startMu.Lock()
	if p.closed.Load() {
		p.startMu.Unlock()
		return errResult(wire.CodeUnavailable, "plugin %q is closed", p.name)
	}
	p.calls.Add(1)
	p.startMu.Unlock()
	defer p.calls.Done()
	if len(c.Payload) > p.limits.MaxMessageBytes {
		return errResult(wire.CodeTooLarge, "call to %s: payload of %d bytes exceeds the limit of %d", c.Method, len(c.Payload), p.limits.MaxMessageBytes)
	}
	timeout := p.limits.CallTimeout
	if c.Deadline != 0 {
		timeout = min(timeout, time.Until(time.Unix(0, c.Deadline)))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Close ends the calls in flight.
	defer context.AfterFunc(p.startCtx, cancel)()
	inst, err := p.get(ctx)
	if err != nil {
		return wire.Result{Error: p.callError(c.Method, ctx, err, nil)}
	}
	res, healthy := p.run(ctx, inst, c)
	p.put(inst, healthy && !inst.spent)
	return res
}

func (p *plugin) get(ctx context.Context) (*instance, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case inst := <-p.idle:
		return inst, nil
	default:
	}
	inst, err := p.newInstance(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return inst, nil
}

func (p *plugin) put(inst *instance, healthy bool) {
	if healthy && !p.closed.Load() {
		p.idle <- inst
		<-p.sem
		return
	}
	// The module may be mid-trap or already closed; either way it goes.
	_ = inst.mod.Close(context.Background())
	<-p.sem
	p.startMu.Lock()
	defer p.startMu.Unlock()
	if !p.closed.Load() {
		p.starting.Go(p.replenish)
	}
}

// startTimeout bounds starting an instance outside of any call.
const startTimeout = time.Minute

// replenish starts an instance ahead of the next call when none is idle,
// so that the call after a crash does not pay for a fresh start.
func (p *plugin) replenish() {
	select {
	case p.sem <- struct{}{}:
	default:
		return // the pool is busy; the next free instance will do
	}
	if len(p.idle) > 0 {
		<-p.sem
		return
	}
	ctx, cancel := context.WithTimeout(p.startCtx, startTimeout)
	defer cancel()
	inst, err := p.newInstance(ctx)
	if err != nil {
		<-p.sem
		if !p.closed.Load() {
			p.logger.Warn("plugin instance did not start", "err", err)
		}
		return
	}
	p.put(inst, true)
}

func (p *plugin) newInstance(ctx context.Context) (*instance, error) {
	inst := &instance{p: p, stderr: newTail(p.logger, slog.LevelWarn, p.output)}
	// An interruptible module's _initialize is called below, once its
	// interrupt global can be reached: a plugin's init() may spin too.
	start := []string{"_initialize"}
	if p.mod.interruptible {
		start = nil
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(start...).
		WithStdout(newTail(p.logger, slog.LevelInfo, p.output)).
		WithStderr(inst.stderr)
	// Without the clock grant, wazero's defaults stand: a wall clock that
	// starts at 2022-01-01T00:00:00Z and a monotonic one at 0, each
	// advancing 1ms per reading, and a sleep that returns at once.
	if p.grants.Clock {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithNanosleep(inst.sleep)
	}
	// Randomness is always real: the Go runtime seeds its maps and
	// crypto/rand from it and cannot take an error, so the only alternative
	// to the host's CSPRNG would be bytes that look random and are not —
	// the same in every instance and run, a silent weakness in any key,
	// nonce or token a plugin makes. Randomness reveals nothing of the host.
	cfg = cfg.WithRandSource(crand.Reader)
	inst.ctx = ctx
	ctx = context.WithValue(ctx, instanceKey{}, inst)
	mod, err := p.mod.rt.InstantiateModule(ctx, p.mod.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("start instance: %w%s", err, inst.stderr.suffix())
	}
	inst.mod = mod
	if p.mod.interruptible {
		flag, ok := mod.ExportedGlobal(interrupt.Export).(api.MutableGlobal)
		if !ok {
			_ = mod.Close(context.Background())
			return nil, fmt.Errorf("start instance: the rewritten module exports no mutable %s", interrupt.Export)
		}
		inst.flag = flag
		if err := inst.invoke(ctx, mod.ExportedFunction("_initialize"), nil); err != nil {
			_ = mod.Close(context.Background())
			return nil, fmt.Errorf("start instance: %w%s", err, inst.stderr.suffix())
		}
	}
	inst.mem = mod.Memory()
	inst.alloc = mod.ExportedFunction("alloc")
	inst.call = mod.ExportedFunction("call")
	return inst, nil
}

// sleep is the guest's nanosleep when the clock is granted: real, but cut
// short when the call's context ends, so a sleeping guest cannot outlive its
// deadline (the guest is then stopped at its next instruction).
func (inst *instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-inst.ctx.Done():
	}
}

// invoke calls fn, interrupting the guest when ctx ends (see package
// interrupt). An interrupted instance is spent: the caller discards it.
func (inst *instance) invoke(ctx context.Context, fn api.Function, stack []uint64) error {
	if inst.flag == nil {
		return fn.CallWithStack(ctx, stack)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { inst.flag.Set(1) })
	err := fn.CallWithStack(ctx, stack)
	if !stop() {
		inst.spent = true
		if err != nil {
			return fmt.Errorf("%w: the guest was interrupted (%v)", ctx.Err(), err)
		}
	}
	return err
}

func (inst *instance) abiVersion(ctx context.Context) (int32, error) {
	if err := inst.invoke(ctx, inst.mod.ExportedFunction("abi_version"), inst.stack[:]); err != nil {
		return 0, err
	}
	return int32(uint32(inst.stack[0])), nil
}

func (inst *instance) describe(ctx context.Context, maxBytes int) (wire.Manifest, error) {
	var m wire.Manifest
	if err := inst.invoke(ctx, inst.mod.ExportedFunction("describe"), inst.stack[:]); err != nil {
		return m, err
	}
	body, isErr, err := inst.readResult(inst.stack[0], maxBytes)
	if err != nil {
		return m, err
	}
	if isErr {
		return m, fmt.Errorf("plugin answered %s", body)
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	return m, nil
}

// run performs one call; healthy is false when the instance must go.
func (p *plugin) run(ctx context.Context, inst *instance, c wire.Call) (res wire.Result, healthy bool) {
	inst.ctx = ctx
	inst.stderr.reset()
	ctx = context.WithValue(ctx, instanceKey{}, inst)
	n := 5 + len(c.Method) + len(c.Payload)
	if uint32(n) > inst.inCap {
		inst.stack[0] = uint64(n)
		if err := inst.invoke(ctx, inst.alloc, inst.stack[:]); err != nil {
			return wire.Result{Error: p.callError(c.Method, ctx, err, inst)}, false
		}
		inst.inPtr, inst.inCap = uint32(inst.stack[0]), uint32(n)
	}
	buf, ok := inst.mem.Read(inst.inPtr, uint32(n))
	if !ok {
		return errResult(wire.CodeCrashed, "plugin %q: alloc returned a buffer outside its memory", p.name), false
	}
	binary.LittleEndian.PutUint32(buf, uint32(len(c.Method)))
	buf[4] = 0
	if c.Checked {
		buf[4] = 1
	}
	copy(buf[5:], c.Method)
	copy(buf[5+len(c.Method):], c.Payload)
	inst.stack[0], inst.stack[1] = uint64(inst.inPtr), uint64(n)
	if err := inst.invoke(ctx, inst.call, inst.stack[:]); err != nil {
		return wire.Result{Error: p.callError(c.Method, ctx, err, inst)}, false
	}
	body, isErr, err := inst.readResult(inst.stack[0], p.limits.MaxMessageBytes)
	if err != nil {
		code := wire.CodeCrashed
		if errors.Is(err, errTooLarge) {
			code = wire.CodeTooLarge
		}
		return errResult(code, "plugin %q: %s: %v", p.name, c.Method, err), false
	}
	if isErr {
		var we wire.Error
		if err := json.Unmarshal(body, &we); err != nil || we.Code == "" {
			return errResult(wire.CodeCrashed, "plugin %q: %s: malformed error result", p.name, c.Method), false
		}
		// A handler that panicked was recovered by the SDK, but its
		// globals may be half-updated: start the next call afresh.
		return wire.Result{Error: &we}, we.Code != wire.CodeCrashed
	}
	if !json.Valid(body) {
		return errResult(wire.CodeCrashed, "plugin %q: %s: result is not valid JSON", p.name, c.Method), false
	}
	return wire.Result{Payload: body}, true
}

var errTooLarge = errors.New("result too large")

// readResult copies out a result the guest packed as ptr<<32|len.
func (inst *instance) readResult(packed uint64, maxBytes int) (body []byte, isErr bool, err error) {
	ptr, n := uint32(packed>>32), uint32(packed)
	if n == 0 {
		return nil, false, errors.New("empty result")
	}
	if int64(n) > int64(maxBytes)+1 {
		return nil, false, fmt.Errorf("%w: %d bytes exceed the limit of %d", errTooLarge, n-1, maxBytes)
	}
	out, ok := inst.mem.Read(ptr, n)
	if !ok {
		return nil, false, fmt.Errorf("result at %#x+%d lies outside the plugin's memory", ptr, n)
	}
	switch out[0] {
	case 0, 1:
		return bytes.Clone(out[1:]), out[0] == 1, nil
	default:
		return nil, false, fmt.Errorf("result has unknown status byte %#x", out[0])
	}
}

// callError turns a failed wasm call into the wire error its caller sees.
func (p *plugin) callError(method string, ctx context.Context, err error, inst *instance) *wire.Error {
	var tail string
	if inst != nil {
		tail = inst.stderr.suffix()
	}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded,
		errors.Is(err, context.DeadlineExceeded):
		return &wire.Error{Code: wire.CodeTimeout, Message: fmt.Sprintf("plugin %q: %s did not finish before its deadline; the instance was stopped", p.name, method), Retryable: true}
	case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeContextCanceled,
		errors.Is(err, context.Canceled):
		return &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("plugin %q: %s was canceled", p.name, method)}
	case errors.As(err, &exit):
		return &wire.Error{Code: wire.CodeCrashed, Message: fmt.Sprintf("plugin %q: %s: the plugin exited with code %d%s", p.name, method, exit.ExitCode(), tail), Retryable: true}
	case ctx.Err() != nil:
		return &wire.Error{Code: wire.CodeTimeout, Message: fmt.Sprintf("plugin %q: %s did not finish before its deadline", p.name, method), Retryable: true}
	default:
		// The wasm stack trace goes to the log; the caller gets its first line.
		p.logger.Warn("plugin trapped", "method", method, "err", err)
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return &wire.Error{Code: wire.CodeCrashed, Message: fmt.Sprintf("plugin %q: %s: %s%s", p.name, method, msg, tail), Retryable: true}
	}
}

func errResult(code, format string, args ...any) wire.Result {
	return wire.Result{Error: wire.Errorf(code, format, args...)}
}

// startRun runs the plugin's run hooks (sdk.Run) in an instance of their
// own, outside the call pool and with no deadline, until Close.
func (p *plugin) startRun() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stopRun = cancel
	p.running.Go(func() {
		inst, err := p.newInstance(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.logger.Warn("plugin run hook did not start", "err", err)
			}
			return
		}
		res, _ := p.run(ctx, inst, wire.Call{Method: wire.MethodRun})
		_ = inst.mod.Close(context.Background())
		switch {
		case ctx.Err() != nil:
		case res.Error != nil:
			p.logger.Warn("plugin run hook ended", "err", res.Error)
		default:
			p.logger.Info("plugin run hook returned")
		}
	})
}

// Close stops every instance and releases the plugin's compiled module.
// Calls in flight end with an error.
func (p *plugin) Close(ctx context.Context) error {
	p.startMu.Lock()
	already := p.closed.Swap(true)
	p.startMu.Unlock()
	if already {
		return nil
	}
	// An instance being started behind a crash, or a guest in a call,
	// would race the runtime's close: they are cancelled, and waited for.
	p.stopStart()
	p.calls.Wait()
	p.starting.Wait()
	if p.stopRun != nil {
		p.stopRun()
		p.running.Wait()
	}
	// Every instance left is idle now.
	for len(p.idle) > 0 {
		_ = (<-p.idle).mod.Close(ctx)
	}
	return p.t.release(ctx, p.mod)
}

func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	return nil
}

// tail logs what a guest writes to stdout or stderr, line by line and
// within the plugin's output rate, and keeps the start of what it wrote
// during the current call, so a crash report can say what the guest said
// as it died ("fatal error: out of memory" comes first, a goroutine dump
// after it).
type tail struct {
	mu     sync.Mutex
	logger *slog.Logger
	limit  *host.OutputLimiter
	level  slog.Level
	line   []byte
	head   []byte
}

const tailBytes = 256

func newTail(l *slog.Logger, level slog.Level, limit *host.OutputLimiter) *tail {
	return &tail{logger: l, level: level, limit: limit}
}

func (t *tail) emit(line []byte) {
	if t.limit.Allow(len(line)) {
		t.logger.Log(context.Background(), t.level, "plugin output", "line", string(line))
	}
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := tailBytes - len(t.head); room > 0 {
		t.head = append(t.head, b[:min(room, len(b))]...)
	}
	t.line = append(t.line, b...)
	for {
		i := bytes.IndexByte(t.line, '\n')
		if i < 0 {
			break
		}
		t.emit(t.line[:i])
		t.line = t.line[i+1:]
	}
	if len(t.line) > 4*tailBytes {
		t.emit(t.line)
		t.line = t.line[:0]
	}
	return len(b), nil
}

// reset forgets the output of earlier calls.
func (t *tail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.head = t.head[:0]
}

// suffix is the first line of the call's output for an error message, or
// "": "fatal error: out of memory" says why it died, while the stack
// after it stays in the log, out of the caller's (often a model's) context.
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	head, _, _ := bytes.Cut(bytes.TrimSpace(t.head), []byte("\n"))
	if len(head) == 0 {
		return ""
	}
	return "; plugin output: " + string(head) + " (the rest is in the agent's log)"
}
