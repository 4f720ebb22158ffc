package hnsw

import "math"

// The graph walks quantized copies of the vectors: each coordinate an int8,
// scaled per vector by its largest coordinate, so a 384-d vector is 384
// bytes instead of 1536 and a distance is an integer dot product. The
// caller's float32 vectors re-rank the final candidates, so scores are exact.

// quantize writes v's codes into c (len(v) bytes) and returns the scale s
// with v[i] ≈ s*c[i].
func quantize(c []int8, v []float32) float32 {
	var m float32
	for _, x := range v {
		m = max(m, float32(math.Abs(float64(x))))
	}
	if m == 0 || math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
		clear(c)
		return 0
	}
	inv := 127 / m
	for i, x := range v {
		c[i] = int8(math.Round(float64(x * inv)))
	}
	return m / 127
}

// dot8 returns the dot product of a and b, which must have equal lengths.
// On amd64 with AVX2 the bulk runs in assembly.
func dot8(a, b []int8) int32 {
	b = b[:len(a)]
	var s int32
	n := len(a) &^ 15
	if useAVX2 && n > 0 {
		s = dot8AVX2(&a[0], &b[0], n)
	} else {
		n = 0
	}
	return s + dot8Go(a[n:], b[n:])
}

func dot8Go(a, b []int8) int32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa, bb := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += int32(aa[0]) * int32(bb[0])
		s1 += int32(aa[1]) * int32(bb[1])
		s2 += int32(aa[2]) * int32(bb[2])
		s3 += int32(aa[3]) * int32(bb[3])
	}
	for ; i < len(a); i++ {
		s0 += int32(a[i]) * int32(b[i])
	}
	return s0 + s1 + s2 + s3
}
