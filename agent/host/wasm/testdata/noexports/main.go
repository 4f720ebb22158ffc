// Command noexports is a WASM reactor that is not a depai plugin.
package main

//go:wasmexport add
func add(a, b int32) int32 { return a + b }

func main() {}
