// Command raw speaks the depai WASM ABI without the SDK, to answer in ways
// the SDK never would: each method name picks a malformed result.
package main

import (
	"encoding/binary"
	"strconv"
	"unsafe"
)

var in, out []byte

//go:wasmexport abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport alloc
func alloc(n int32) unsafe.Pointer {
	in = make([]byte, n)
	return unsafe.Pointer(unsafe.SliceData(in))
}

func pack(b []byte) uint64 {
	out = b
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}

//go:wasmexport describe
func describe() uint64 {
	return pack([]byte("\x00" + `{"name":"raw","version":"0","abi":1,"tools":[` +
		`{"name":"raw.status","description":"unknown status byte"},` +
		`{"name":"raw.notjson","description":"payload is not JSON"},` +
		`{"name":"raw.badptr","description":"result outside memory"},` +
		`{"name":"raw.empty","description":"empty result"},` +
		`{"name":"raw.badcall","description":"host_call with a range outside memory"},` +
		`{"name":"raw.hostcalls","description":"calls clock on the host as often as the payload says"},` +
		`{"name":"raw.ok","description":"a good answer"}],"requests":{}}`))
}

//go:wasmimport depai host_call
func hostCall(mptr, mlen, pptr, plen, optr, ocap uint32) uint64

//go:wasmimport depai host_result
func hostResult(optr, ocap uint32) uint32

//go:wasmexport call
func call(p unsafe.Pointer, n int32) uint64 {
	req := unsafe.Slice((*byte)(p), n)
	method := string(req[5 : 5+binary.LittleEndian.Uint32(req)])
	switch method {
	case "raw.status":
		return pack([]byte("\x07{}"))
	case "raw.notjson":
		return pack([]byte("\x00{not json"))
	case "raw.badptr":
		return 0xfff00000<<32 | 16
	case "raw.empty":
		return 0
	case "raw.badcall":
		return hostCall(0xfff00000, 8, 0, 0, 0, 0)
	case "raw.hostcalls":
		n, _ := strconv.Atoi(string(req[5+len(method):]))
		m := []byte("clock")
		res := make([]byte, 64)
		for range n {
			r := hostCall(uint32(uintptr(unsafe.Pointer(&m[0]))), uint32(len(m)), 0, 0, uint32(uintptr(unsafe.Pointer(&res[0]))), uint32(len(res)))
			if r>>32 != 0 {
				// An error longer than res waits for host_result.
				if n := uint32(r); n > uint32(len(res)) {
					res = make([]byte, n)
					hostResult(uint32(uintptr(unsafe.Pointer(&res[0]))), n)
				}
				return pack(append([]byte("\x01"), res[:uint32(r)]...))
			}
		}
		return pack([]byte("\x00" + strconv.Itoa(n)))
	}
	return pack([]byte("\x00{\"ok\":true}"))
}

func main() {}
