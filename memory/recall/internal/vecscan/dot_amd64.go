package vecscan

import "golang.org/x/sys/cpu"

// useAVX2 is a property of the CPU, fixed at start.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32
