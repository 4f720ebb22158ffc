package kv

import (
	"bytes"
	"math"
	"slices"
	"testing"
)

func TestValueRoundTrip(t *testing.T) {
	tests := []struct {
		meta  string
		model string
		vec   []float32
	}{
		{`{"a":1}`, "", nil},
		{`{}`, "text-embedding-3-small", []float32{0, -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32}},
		{``, "m", []float32{1}},
	}
	for _, tt := range tests {
		v := AppendValue(nil, []byte(tt.meta), tt.model, tt.vec)
		meta, model, vec, err := DecodeValue(v)
		if err != nil || string(meta) != tt.meta || model != tt.model || !slices.Equal(vec, tt.vec) {
			t.Errorf("round trip of %+v = %q %q %v %v", tt, meta, model, vec, err)
		}
		// Every truncation is an error, never a panic or a short vector.
		for i := range len(v) {
			if _, _, _, err := DecodeValue(v[:i]); err == nil {
				t.Errorf("%+v truncated to %d bytes decoded without error", tt, i)
			}
		}
	}
}

func TestKeysOrder(t *testing.T) {
	// Seq is big-endian, so byte order is commit order within a prefix, and
	// "ns 0" keeps namespace "a" apart from "a/b" and "a-b".
	p := NamespacePrefix("a")
	if bytes.Compare(WithSeq(p, 255), WithSeq(p, 256)) >= 0 {
		t.Error("seq 255 does not sort before 256")
	}
	for _, other := range []string{"a/b", "a-b", "ab"} {
		if bytes.HasPrefix(WithSeq(NamespacePrefix(other), 1), p) {
			t.Errorf("namespace %q falls under the prefix of \"a\"", other)
		}
	}
	if s, err := SeqSuffix(WithSeq(FieldPrefix("ns", FieldTag, "t"), 42)); err != nil || s != 42 {
		t.Errorf("SeqSuffix = %d, %v", s, err)
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Add(AppendValue(nil, []byte(`{"x":1}`), "m", []float32{1, 2}))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, v []byte) {
		meta, model, vec, err := DecodeValue(v)
		if err != nil {
			return
		}
		// Varints may be non-canonical, so compare what they decode to.
		m2, model2, vec2, err := DecodeValue(AppendValue(nil, meta, model, vec))
		sameBits := slices.EqualFunc(vec2, vec, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) })
		if err != nil || !bytes.Equal(m2, meta) || model2 != model || !sameBits {
			t.Fatalf("re-encoding %x does not decode the same: %v", v, err)
		}
	})
}
