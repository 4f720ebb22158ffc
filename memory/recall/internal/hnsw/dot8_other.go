//go:build !amd64

package hnsw

const useAVX2 = false

func dot8AVX2(a, b *int8, n int) int32 { panic("unreachable: useAVX2 is false") }
