// Package registry holds what a plugin registered in init(): its manifest and
// handlers. Both transports (the wasip1 exports and the go-plugin server)
// dispatch calls through it, so a plugin behaves the same wherever it runs.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/depai/depai/sdk/internal/codec"
	"github.com/depai/depai/sdk/wire"
)

// HostCaller reaches the host's capabilities (wire.Host* methods).
type HostCaller interface {
	HostCall(ctx context.Context, method string, payload []byte) ([]byte, error)
}

// Handler runs one method with raw JSON in and out.
type Handler func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error)

// Registry is a plugin's manifest and handlers.
type Registry struct {
	mu       sync.RWMutex
	manifest wire.Manifest
	handlers map[string]Handler
	// lazy tool definitions, resolved into manifest.Tools on the first
	// Manifest call (see AddLazyTool).
	lazy []func() (wire.ToolDef, error)
	runs []func(context.Context) error
}

// Default is the registry sdk's init-time registration fills: a plugin
// binary is exactly one plugin.
var Default = New()

// New returns an empty registry.
func New() *Registry {
	return &Registry{manifest: wire.Manifest{ABI: wire.ABIVersion}, handlers: map[string]Handler{}}
}

// SetInfo sets the plugin's name and version.
func (r *Registry) SetInfo(name, version string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifest.Name, r.manifest.Version = name, version
}

// Request adds to the capabilities the plugin requests.
func (r *Registry) Request(c wire.Capabilities) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := &r.manifest.Requests
	m.MemoryRead = append(m.MemoryRead, c.MemoryRead...)
	m.MemoryWrite = append(m.MemoryWrite, c.MemoryWrite...)
	m.HTTP = append(m.HTTP, c.HTTP...)
	m.Emit = append(m.Emit, c.Emit...)
	m.Secrets = append(m.Secrets, c.Secrets...)
	m.Config = append(m.Config, c.Config...)
	m.Clock = m.Clock || c.Clock
	m.Random = m.Random || c.Random
	m.Actuator = m.Actuator || c.Actuator
	m.Payment = m.Payment || c.Payment
	m.Sign = m.Sign || c.Sign
}

// AddTool registers a tool. A duplicate name is a programming error in the
// plugin and is reported by Manifest's validation on the host side; here the
// later registration wins so init never panics.
func (r *Registry) AddTool(def wire.ToolDef, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifest.Tools = append(r.manifest.Tools, def)
	r.handlers[def.Name] = h
}

// AddLazyTool registers a tool whose definition is computed only when the
// manifest is first asked for. Deriving JSON Schemas by reflection is most
// of a plugin's start-up, and a WASM plugin starts a fresh instance for
// each concurrent call while only one of them is ever asked to describe
// itself. A def error is reported in the manifest's Errors.
func (r *Registry) AddLazyTool(name string, def func() (wire.ToolDef, error), h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lazy = append(r.lazy, def)
	r.handlers[name] = h
}

// AddSensor registers a sensor or feed.
func (r *Registry) AddSensor(def wire.SensorDef, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifest.Sensors = append(r.manifest.Sensors, def)
	r.handlers[def.Name] = h
}

// AddRun registers a run hook: a loop the host starts once after loading
// (wire.MethodRun) and ends on unload.
func (r *Registry) AddRun(fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, fn)
	r.manifest.Run = true
}

// Fail records a registration mistake. Registration runs in init(), where a
// panic would kill the plugin before it can say why; the error travels in
// the manifest instead and the host refuses to load the plugin, naming it.
func (r *Registry) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifest.Errors = append(r.manifest.Errors, err.Error())
}

// Manifest returns a copy of the manifest.
func (r *Registry) Manifest() wire.Manifest {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, def := range r.lazy {
		d, err := def()
		if err != nil {
			r.manifest.Errors = append(r.manifest.Errors, err.Error())
			continue
		}
		r.manifest.Tools = append(r.manifest.Tools, d)
	}
	r.lazy = nil
	m := r.manifest
	m.Tools = append([]wire.ToolDef(nil), m.Tools...)
	m.Sensors = append([]wire.SensorDef(nil), m.Sensors...)
	m.Errors = append([]string(nil), m.Errors...)
	return m
}

type hostKey struct{}

type checkedKey struct{}

// InputChecked reports whether the host already validated the call's
// payload against the method's input schema (wire.Call.Checked), so the
// plugin need not validate it again.
func InputChecked(ctx context.Context) bool {
	v, _ := ctx.Value(checkedKey{}).(bool)
	return v
}

// WithHost returns ctx carrying the host caller handlers reach the host through.
func WithHost(ctx context.Context, h HostCaller) context.Context {
	return context.WithValue(ctx, hostKey{}, h)
}

// Host returns the host caller in ctx, or nil.
func Host(ctx context.Context) HostCaller {
	h, _ := ctx.Value(hostKey{}).(HostCaller)
	return h
}

// Dispatch runs one call. A panicking handler becomes a wire error with code
// crashed, so a transport never dies of a handler's bug.
func (r *Registry) Dispatch(ctx context.Context, host HostCaller, call wire.Call) wire.Result {
	return r.DispatchIn(CallContext(ctx, host, call.Checked), call)
}

// CallContext is ctx as a handler sees it: carrying host and whether the
// host checked the call's input. A transport that serves its calls one at
// a time, all with the same host and no deadline of their own (the WASM
// guest), makes the two contexts once and calls DispatchIn: a context is
// an allocation, and in a WASM guest each costs microseconds.
func CallContext(ctx context.Context, host HostCaller, checked bool) context.Context {
	ctx = WithHost(ctx, host)
	if checked {
		ctx = context.WithValue(ctx, checkedKey{}, true)
	}
	return ctx
}

// DispatchIn is Dispatch in a context CallContext made for the call.
func (r *Registry) DispatchIn(ctx context.Context, call wire.Call) (res wire.Result) {
	if call.Method == wire.MethodDescribe {
		b, err := codec.Marshal(r.Manifest())
		if err != nil {
			return wire.Result{Error: wire.Errorf(wire.CodeInternal, "encode manifest: %v", err)}
		}
		return wire.Result{Payload: b}
	}
	if call.Method == wire.MethodRun {
		return r.run(ctx)
	}
	r.mu.RLock()
	h, ok := r.handlers[call.Method]
	r.mu.RUnlock()
	if !ok {
		return wire.Result{Error: wire.Errorf(wire.CodeNotFound, "plugin %q has no method %q", r.manifest.Name, call.Method)}
	}
	defer func() {
		if p := recover(); p != nil {
			res = crashed(call.Method, p)
		}
	}()
	out, err := h(ctx, call.Payload)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			// The handler gave up with its call: the host's deadline passed
			// (a call's context may end Canceled with the deadline as cause).
			return wire.Result{Error: &wire.Error{Code: wire.CodeTimeout, Message: fmt.Sprintf("%s: deadline exceeded", call.Method), Retryable: true}}
		}
		return wire.Result{Error: AsWireError(err)}
	}
	return wire.Result{Payload: out}
}

// crashed reports a recovered panic. The stack goes to standard error, which
// both transports route to the agent's log; the caller — often a model —
// gets one line, not the plugin's internals.
func crashed(method string, p any) wire.Result {
	fmt.Fprintf(os.Stderr, "panic in %s: %v\n%s", method, p, debug.Stack())
	return wire.Result{Error: wire.Errorf(wire.CodeCrashed, "panic in %s: %v (stack in the agent's log)", method, p)}
}

// run runs every run hook concurrently until all return; the first error
// (or panic) is the result. With no hooks it returns at once.
func (r *Registry) run(ctx context.Context) wire.Result {
	r.mu.RLock()
	runs := slices.Clone(r.runs)
	r.mu.RUnlock()
	results := make(chan wire.Result, len(runs))
	for _, fn := range runs {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- crashed(wire.MethodRun, p)
				}
			}()
			if err := fn(ctx); err != nil {
				results <- wire.Result{Error: AsWireError(err)}
				return
			}
			results <- wire.Result{Payload: json.RawMessage("{}")}
		}()
	}
	res := wire.Result{Payload: json.RawMessage("{}")}
	for range runs {
		if r := <-results; r.Error != nil && res.Error == nil {
			res = r
		}
	}
	return res
}

// AsWireError converts any error to the wire shape, keeping a *wire.Error
// (also when wrapped) as is.
func AsWireError(err error) *wire.Error {
	if we, ok := errors.AsType[*wire.Error](err); ok {
		return we
	}
	return &wire.Error{Code: wire.CodeInternal, Message: fmt.Sprint(err)}
}
