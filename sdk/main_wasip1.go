//go:build wasip1

package sdk

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"unsafe"

	"github.com/depai/depai/sdk/internal/codec"
	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// The WASM ABI (major wire.ABIVersion). The plugin is a wasip1 reactor: the
// host runs _initialize (the Go runtime and every init(), which is where the
// plugin registers) and then calls these exports, one call at a time per
// instance.
//
// Exports:
//
//	abi_version() i32
//	alloc(n i32) ptr          a buffer of at least n bytes, valid until the next alloc
//	call(ptr, n i32) i64      request: u32le method length, flags byte, method, payload
//	describe() i64            the manifest as JSON, as a call result
//
// Flag bit 0 is wire.Call.Checked. A call's result is packed as ptr<<32 | len; its first byte is 0 followed
// by the JSON payload, or 1 followed by a JSON wire.Error. It stays valid
// until the next call.
//
// Imports (module "depai"):
//
//	host_call(mptr, mlen, pptr, plen, optr, ocap i32) i64
//	    runs a host method; the low 32 bits are the result length n and bit
//	    32 flags a JSON wire.Error. When n > ocap nothing was written and the
//	    guest fetches the result with host_result into a buffer of n bytes.
//	host_result(ptr, cap i32) i32
//	log(ptr, len i32)         a wire.LogArgs JSON line; no reply

// Main does nothing in a WASM plugin: a reactor's main is never the entry
// point, the host calls the exports instead. It exists so the same source
// builds to both transports.
func Main() {}

var (
	inBuf   []byte // the request buffer alloc hands out
	outBuf  []byte // the last call's result, kept alive until the next call
	hostBuf = make([]byte, 4096)

	// The contexts of a call the host checked and of one it did not. An
	// instance serves one call at a time, all alike (the host enforces the
	// deadline), so they are made once rather than at every call.
	checkedCtx   = registry.CallContext(context.Background(), guestHost{}, true)
	uncheckedCtx = registry.CallContext(context.Background(), guestHost{}, false)
)

//go:wasmexport abi_version
func abiVersion() int32 { return wire.ABIVersion }

//go:wasmexport alloc
func alloc(n int32) unsafe.Pointer {
	if n <= 0 {
		n = 1
	}
	if int(n) > cap(inBuf) {
		inBuf = make([]byte, n)
	}
	return unsafe.Pointer(unsafe.SliceData(inBuf))
}

//go:wasmexport call
func call(p unsafe.Pointer, n int32) uint64 {
	req := unsafe.Slice((*byte)(p), n)
	if len(req) < 5 || int(binary.LittleEndian.Uint32(req)) > len(req)-5 {
		return result(wire.Result{Error: wire.Errorf(wire.CodeInvalidArgument, "malformed call envelope of %d bytes", n)})
	}
	ml := binary.LittleEndian.Uint32(req)
	// The method's name is not copied: it is only looked up, and quoted
	// (copied) into an error, before the call returns and the buffer is
	// reused.
	c := wire.Call{Method: unsafe.String(unsafe.SliceData(req[5:]), ml), Payload: json.RawMessage(req[5+ml:]), Checked: req[4]&1 != 0}
	ctx := uncheckedCtx
	if c.Checked {
		ctx = checkedCtx
	}
	return result(registry.Default.DispatchIn(ctx, c))
}

//go:wasmexport describe
func describe() uint64 {
	return result(registry.Default.Dispatch(context.Background(), guestHost{}, wire.Call{Method: wire.MethodDescribe}))
}

func result(r wire.Result) uint64 {
	outBuf = outBuf[:0]
	if r.Error != nil {
		b, err := codec.Marshal(r.Error)
		if err != nil {
			b = []byte(`{"code":"internal","message":"encode error"}`)
		}
		outBuf = append(append(outBuf, 1), b...)
	} else {
		outBuf = append(append(outBuf, 0), r.Payload...)
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(outBuf))))<<32 | uint64(len(outBuf))
}

//go:wasmimport depai host_call
func wasmHostCall(mptr unsafe.Pointer, mlen int32, pptr unsafe.Pointer, plen int32, optr unsafe.Pointer, ocap int32) uint64

//go:wasmimport depai host_result
func wasmHostResult(ptr unsafe.Pointer, n int32) int32

//go:wasmimport depai log
func wasmLog(ptr unsafe.Pointer, n int32)

// guestHost reaches the host through the imports.
type guestHost struct{}

func (guestHost) HostCall(_ context.Context, method string, payload []byte) ([]byte, error) {
	if method == wire.HostLog {
		wasmLog(unsafe.Pointer(unsafe.SliceData(payload)), int32(len(payload)))
		return nil, nil
	}
	r := wasmHostCall(unsafe.Pointer(unsafe.StringData(method)), int32(len(method)),
		unsafe.Pointer(unsafe.SliceData(payload)), int32(len(payload)),
		unsafe.Pointer(unsafe.SliceData(hostBuf)), int32(len(hostBuf)))
	n, isErr := int(uint32(r)), r&(1<<32) != 0
	out := hostBuf
	if n > len(out) {
		out = make([]byte, n)
		n = int(wasmHostResult(unsafe.Pointer(unsafe.SliceData(out)), int32(n)))
	}
	// Copy: hostBuf is reused by the next host call.
	b := append([]byte(nil), out[:n]...)
	if isErr {
		var we wire.Error
		if err := codec.Unmarshal(b, &we); err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "%s: undecodable host error: %v", method, err)
		}
		return nil, &we
	}
	return b, nil
}
