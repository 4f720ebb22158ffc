// Package kv is the badger key layout and value encoding of the memory store.
//
// Keys (seq is 8 bytes big-endian, so byte order is commit order):
//
//	r seq                          → record value (see AppendValue)
//	i ulid(16)                     → seq: Get by ID, for imported records (a
//	                                 stored record's own ID carries its seq)
//	n ns 0 seq                     → -: records of one namespace
//	x ns 0 field value 0 seq       → -: field is 'k' kind, 'a' author, 't' tag, 'y' key
//	f ns 0 key                     → seq: the current version of a fact
//	s ns                           → -: the set of namespaces, loaded on open
//	m name                         → store metadata (format version, last seq)
//	k key                          → first seq u64, count u32, sha-256 of the request: an idempotency key
//
// Namespaces and labels never contain NUL, so "ns 0" and "value 0" are
// unambiguous prefixes.
package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Key prefixes.
const (
	PrefixRecord    = 'r'
	PrefixID        = 'i'
	PrefixNamespace = 'n'
	PrefixField     = 'x'
	PrefixFact      = 'f'
	PrefixNSSet     = 's'
	PrefixMeta      = 'm'
	PrefixIdem      = 'k'
)

// Index fields under PrefixField.
const (
	FieldKind   = 'k'
	FieldAuthor = 'a'
	FieldTag    = 't'
	FieldKey    = 'y'
)

// FormatVersion is stored under MetaVersion; Open refuses other versions.
const (
	MetaVersion   = "mversion"
	FormatVersion = "depai-memory-1"
)

// MetaLastSeq holds the Seq of the newest record as of each commit; every
// commit writes it, so the store's files say how far they reach even when
// the newest records have expired.
const MetaLastSeq = "mlastseq"

// IdemKey is k key.
func IdemKey(key string) []byte {
	return append([]byte{PrefixIdem}, key...)
}

// RecordKey is r seq.
func RecordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{PrefixRecord}, seq)
}

// IDKey is i ulid.
func IDKey(id [16]byte) []byte {
	return append([]byte{PrefixID}, id[:]...)
}

// NamespacePrefix is n ns 0.
func NamespacePrefix(ns string) []byte {
	b := make([]byte, 0, len(ns)+2)
	b = append(b, PrefixNamespace)
	b = append(b, ns...)
	return append(b, 0)
}

// FieldPrefix is x ns 0 field value 0.
func FieldPrefix(ns string, field byte, value string) []byte {
	b := make([]byte, 0, len(ns)+len(value)+4)
	b = append(b, PrefixField)
	b = append(b, ns...)
	b = append(b, 0, field)
	b = append(b, value...)
	return append(b, 0)
}

// FactKey is f ns 0 key.
func FactKey(ns, key string) []byte {
	b := make([]byte, 0, len(ns)+len(key)+2)
	b = append(b, PrefixFact)
	b = append(b, ns...)
	b = append(b, 0)
	return append(b, key...)
}

// NSSetKey is s ns.
func NSSetKey(ns string) []byte {
	return append([]byte{PrefixNSSet}, ns...)
}

// WithSeq appends seq to an index prefix.
func WithSeq(prefix []byte, seq uint64) []byte {
	b := make([]byte, len(prefix), len(prefix)+8)
	copy(b, prefix)
	return binary.BigEndian.AppendUint64(b, seq)
}

// SeqSuffix returns the seq at the end of an index or record key.
func SeqSuffix(key []byte) (uint64, error) {
	if len(key) < 9 {
		return 0, fmt.Errorf("kv: key %q too short for a seq", key)
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

// Seq decodes an 8-byte seq value.
func Seq(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("kv: seq value is %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SeqValue encodes a seq as a value.
func SeqValue(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

const valueVersion = 1

// AppendValue encodes a record value: the record's JSON without its
// embedding, then the embedding model and its vector as raw little-endian
// float32 (never JSON: it is most of the bytes and decoding JSON floats is slow).
//
//	1 | uvarint len(meta) | meta | uvarint len(model) | model | uvarint dims | dims × float32 LE
func AppendValue(dst, meta []byte, model string, vec []float32) []byte {
	dst = append(dst, valueVersion)
	dst = binary.AppendUvarint(dst, uint64(len(meta)))
	dst = append(dst, meta...)
	dst = binary.AppendUvarint(dst, uint64(len(model)))
	dst = append(dst, model...)
	dst = binary.AppendUvarint(dst, uint64(len(vec)))
	for _, f := range vec {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

var errShort = errors.New("kv: record value truncated")

// DecodeValue splits a value made by AppendValue. meta aliases v.
func DecodeValue(v []byte) (meta []byte, model string, vec []float32, err error) {
	if len(v) == 0 || v[0] != valueVersion {
		return nil, "", nil, fmt.Errorf("kv: record value has unknown format (first byte %#x)", firstByte(v))
	}
	v = v[1:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(v)
		if k <= 0 || n > uint64(len(v)-k) {
			return nil, errShort
		}
		b := v[k : k+int(n)]
		v = v[k+int(n):]
		return b, nil
	}
	if meta, err = field(); err != nil {
		return nil, "", nil, err
	}
	m, err := field()
	if err != nil {
		return nil, "", nil, err
	}
	dims, k := binary.Uvarint(v)
	if k <= 0 || dims > uint64(len(v)-k)/4 {
		return nil, "", nil, errShort
	}
	v = v[k:]
	if dims > 0 {
		vec = make([]float32, dims)
		for i := range vec {
			vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(v[4*i:]))
		}
	}
	if len(v) != int(dims)*4 {
		return nil, "", nil, fmt.Errorf("kv: record value has %d trailing bytes", len(v)-int(dims)*4)
	}
	return meta, string(m), vec, nil
}

func firstByte(v []byte) int {
	if len(v) == 0 {
		return -1
	}
	return int(v[0])
}
