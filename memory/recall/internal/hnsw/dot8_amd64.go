package hnsw

import "golang.org/x/sys/cpu"

// useAVX2 is a property of the CPU, fixed at start.
var useAVX2 = cpu.X86.HasAVX2

//go:noescape
func dot8AVX2(a, b *int8, n int) int32
