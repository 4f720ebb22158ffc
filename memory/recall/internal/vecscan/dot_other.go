//go:build !amd64

package vecscan

const useAVX2 = false

func dotAVX2(a, b *float32, n int) float32 { panic("unreachable: useAVX2 is false") }
