// Command badabi has the depai exports but claims ABI version 99.
package main

import "unsafe"

var buf = make([]byte, 64)

//go:wasmexport abi_version
func abiVersion() int32 { return 99 }

//go:wasmexport alloc
func alloc(int32) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(buf)) }

//go:wasmexport call
func call(unsafe.Pointer, int32) uint64 { return 0 }

//go:wasmexport describe
func describe() uint64 { return 0 }

func main() {}
