package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/depai/depai/sdk/wire"
)

// errFlag marks a host_call result that is a JSON wire.Error.
const errFlag = 1 << 32

// instantiateHostModule defines the "depai" imports in a runtime; they route
// every host method through the dispatcher of the plugin whose instance
// calls, named as that plugin.
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder("depai").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostCall), []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{api.ValueTypeI64}).
		WithParameterNames("method_ptr", "method_len", "payload_ptr", "payload_len", "out_ptr", "out_cap").
		Export("host_call").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostResult), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").
		Export("host_result").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{i32, i32}, nil).
		WithParameterNames("ptr", "len").
		Export("log").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	return nil
}

// read returns a view of guest memory. A guest that passes a range outside
// its memory traps: panicking in a host function is how wazero aborts the
// call, and the instance is then discarded.
func read(mod api.Module, ptr, n uint64) []byte {
	b, ok := mod.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		panic(fmt.Errorf("host_call: range %#x+%d lies outside the plugin's memory", uint32(ptr), uint32(n)))
	}
	return b
}

// caller is the instance a host function was called from. Every call into
// a guest carries it in its context; a guest reached any other way traps.
func caller(ctx context.Context) *instance {
	inst, ok := ctx.Value(instanceKey{}).(*instance)
	if !ok {
		panic(errors.New("host function called outside a plugin call"))
	}
	return inst
}

func hostCall(ctx context.Context, mod api.Module, stack []uint64) {
	inst := caller(ctx)
	p := inst.p
	method := string(read(mod, stack[0], stack[1]))
	// The payload is a view of guest memory, valid while the guest waits
	// for this call; the dispatcher decodes it before returning.
	payload := read(mod, stack[2], stack[3])
	optr, ocap := uint32(stack[4]), uint32(stack[5])
	var out []byte
	var flag uint64
	if len(payload) > p.limits.MaxMessageBytes {
		out, flag = errJSON(wire.Errorf(wire.CodeTooLarge, "%s: payload of %d bytes exceeds the limit of %d", method, len(payload), p.limits.MaxMessageBytes)), errFlag
	} else if res, werr := p.disp.HostCall(ctx, p.name, method, payload); werr != nil {
		out, flag = errJSON(werr), errFlag
	} else if len(res) > p.limits.MaxMessageBytes {
		out, flag = errJSON(wire.Errorf(wire.CodeTooLarge, "%s: result of %d bytes exceeds the limit of %d", method, len(res), p.limits.MaxMessageBytes)), errFlag
	} else {
		out = res
	}
	if len(out) <= int(ocap) {
		if !mod.Memory().Write(optr, out) {
			panic(fmt.Errorf("host_call: result buffer %#x+%d lies outside the plugin's memory", optr, ocap))
		}
	} else {
		inst.pending = out
	}
	stack[0] = uint64(len(out)) | flag
}

func hostResult(ctx context.Context, mod api.Module, stack []uint64) {
	inst := caller(ctx)
	var out []byte
	out, inst.pending = inst.pending, nil
	n := min(len(out), int(uint32(stack[1])))
	if !mod.Memory().Write(uint32(stack[0]), out[:n]) {
		panic(fmt.Errorf("host_result: buffer %#x+%d lies outside the plugin's memory", uint32(stack[0]), n))
	}
	stack[0] = uint64(n)
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	p := caller(ctx).p
	payload := read(mod, stack[0], stack[1])
	if len(payload) > p.limits.MaxMessageBytes {
		return
	}
	// Logging has no reply; a malformed line is the dispatcher's to report.
	_, _ = p.disp.HostCall(ctx, p.name, wire.HostLog, payload)
}

func errJSON(e *wire.Error) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		return []byte(`{"code":"internal","message":"unencodable host error"}`)
	}
	return b
}
