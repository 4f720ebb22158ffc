// Package sdk is what a depai plugin author imports. A plugin registers its
// tools and sensors in init() with typed Go handlers — their JSON Schemas
// come from the types — and calls Main from main:
//
//	func init() {
//		sdk.Plugin("hello", "0.1.0")
//		sdk.Tool("hello.greet", "Greets someone by name.", greet)
//	}
//
//	func main() { sdk.Main() }
//
// The same source builds to a WASM reactor (GOOS=wasip1 GOARCH=wasm
// go build -buildmode=c-shared) and to a native process plugin; the
// transport's plumbing lives in this package, not in the plugin. Handlers
// reach the host — memory, HTTP, events, config, secrets, the clock — with
// the helpers in host.go, and only as far as the agent's config grants.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/depai/depai/sdk/internal/codec"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// Plugin names the plugin and its version. Call it once, in init().
func Plugin(name, version string) { registry.Default.SetInfo(name, version) }

// Requests declares capabilities the plugin needs (memory namespaces, HTTP
// hosts, topics, secrets, config keys …). The agent refuses to load a plugin
// whose requests its config does not grant, and says what is missing.
func Requests(c wire.Capabilities) { registry.Default.Request(c) }

// ToolOption adjusts a tool's definition.
type ToolOption func(*wire.ToolDef)

// Writes marks a tool that changes memory or remote state.
func Writes() ToolOption { return func(d *wire.ToolDef) { d.Effect = wire.EffectWrite } }

// Actuator marks a tool that moves something in the physical world. The
// agent loads it only when the plugin is granted actuator rights, and its
// safety policy gates every call before the plugin sees it.
func Actuator() ToolOption { return func(d *wire.ToolDef) { d.Effect = wire.EffectActuator } }

// Payment marks a tool that moves money; it needs the payment grant.
func Payment() ToolOption { return func(d *wire.ToolDef) { d.Effect = wire.EffectPayment } }

// Tool registers a typed tool. In and Out must be JSON-encodable; their
// schemas are what the model sees. Arguments that do not match In's schema
// are answered with an invalid_argument error before fn runs. An error fn
// returns reaches the caller as a wire.Error: a *wire.Error (see Errorf)
// keeps its code, anything else becomes code internal.
func Tool[In, Out any](name, description string, fn func(ctx context.Context, in In) (Out, error), opts ...ToolOption) {
	def, check := toolSchemas[In, Out](name, description, opts)
	c := &toolCodec[In, Out]{name: name}
	registry.Default.AddLazyTool(name, def, func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
		var v In
		if len(payload) > 0 {
			// The host checked the arguments against In's schema; decode
			// what it admitted. Otherwise check them here first.
			strict := false
			if !registry.InputChecked(ctx) {
				if err := check(payload); err != nil {
					return nil, err
				}
				strict = strictUnchecked
			}
			var err error
			if v, err = c.decode(payload, strict); err != nil {
				return nil, wire.Errorf(wire.CodeInvalidArgument, "arguments for %s: %v", name, err)
			}
		}
		res, err := fn(ctx, v)
		if err != nil {
			return nil, err
		}
		return c.encode(res)
	})
}

// toolCodec decodes a tool's input and encodes its output with the code
// `depai plugin build --wasm` generated for their types
// (sdk/internal/codecgen), when there is some, and otherwise — or when
// that code declines a document or value — with the reflective codec.
//
// Generated code exists only in a WASM module, whose instance serves one
// call at a time and copies a call's result out before the next one. So
// there the value decoded into, the value encoded and the encoding's
// buffer are kept from call to call: each allocation, and the collections
// they add up to, cost a WASM guest microseconds.
type toolCodec[In, Out any] struct {
	name     string
	resolved sync.Once // a native plugin's calls run concurrently
	dec      func([]byte, bool, *In) bool
	enc      func([]byte, *Out) ([]byte, bool)
	in       In
	out      Out
	buf      []byte
}

// resolve looks the generated code up on first use: it registers in the
// plugin's init, which may run after the registration of the tool.
func (c *toolCodec[In, Out]) resolve() {
	c.resolved.Do(func() {
		dec, enc := codec.Generated(c.name)
		c.dec, _ = dec.(func([]byte, bool, *In) bool)
		c.enc, _ = enc.(func([]byte, *Out) ([]byte, bool))
	})
}

func (c *toolCodec[In, Out]) decode(payload []byte, strict bool) (In, error) {
	c.resolve()
	var zero In
	if c.dec != nil {
		c.in = zero
		ok := c.dec(payload, strict, &c.in)
		v := c.in
		c.in = zero
		if ok {
			return v, nil
		}
		// Declined: the reflective codec decides, from the zero value.
	}
	v := zero
	unmarshal := codec.Unmarshal
	if strict {
		unmarshal = codec.UnmarshalStrict
	}
	err := unmarshal(payload, &v)
	return v, err
}

func (c *toolCodec[In, Out]) encode(v Out) (json.RawMessage, error) {
	c.resolve()
	if c.enc != nil {
		c.out = v
		b, ok := c.enc(c.buf[:0], &c.out)
		var zero Out
		c.out = zero
		if ok {
			c.buf = b
			return b, nil
		}
	}
	return encode(c.name, v)
}

// toolDefinition completes a tool's definition with its schemas.
func toolDefinition(name, description string, in, out json.RawMessage, opts []ToolOption) wire.ToolDef {
	d := wire.ToolDef{Name: name, Description: description, Input: in, Output: out}
	for _, o := range opts {
		o(&d)
	}
	return d
}

// Sensor registers a sensor or feed the host polls every interval; each
// reading is fn's result. A sensor may also push readings with Emit.
func Sensor[Out any](name, description string, interval time.Duration, fn func(ctx context.Context) (Out, error)) {
	out, err := sensorSchema[Out](name)
	if err != nil {
		registry.Default.Fail(fmt.Errorf("sensor %s: output: %w", name, err))
		return
	}
	def := wire.SensorDef{Name: name, Description: description, Output: out}
	if interval > 0 {
		def.Interval = interval.String()
	}
	c := &toolCodec[struct{}, Out]{name: name}
	registry.Default.AddSensor(def, func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		res, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		return c.encode(res)
	})
}

// Run registers a run hook: fn starts once the plugin is loaded, with the
// host reachable from ctx (Emit, Log, MemoryPut … work as in a handler), so
// a reader loop — a serial port, a socket, a subscription — can push
// readings with Emit as they arrive. ctx ends when the plugin is unloaded;
// fn should then return. Call Run in init(), like the other registrations;
// several hooks run concurrently.
//
// On the process transport fn runs in the plugin process, beside the calls.
// On WASM the host runs it in an instance of its own, with no deadline: it
// shares no globals with the instances that serve tool calls, and while it
// waits for I/O nothing else runs in that instance. A WASM run loop that
// sleeps needs the clock grant (without it time.Sleep does not wait, and the
// loop spins). A hook that returns an error is logged; it is not restarted
// until the plugin is reloaded.
func Run(fn func(ctx context.Context) error) { registry.Default.AddRun(fn) }

func encode(name string, v any) (json.RawMessage, error) {
	b, err := codec.Marshal(v)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%s: encode result: %v", name, err)
	}
	return b, nil
}

// Errorf returns an error with a wire code (wire.CodeNotFound,
// wire.CodeInvalidArgument …) that reaches the caller unchanged.
func Errorf(code, format string, args ...any) error { return wire.Errorf(code, format, args...) }
