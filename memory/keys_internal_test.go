package memory

import (
	"bytes"
	"testing"

	"github.com/depai/depai/memory/internal/kv"
)

// TestRecordKeys checks that the keys prepare builds in one buffer are the
// kv package's keys, byte for byte, that appending to one leaves the next
// alone, and that keysLen is exact (so the buffer never grows).
func TestRecordKeys(t *testing.T) {
	r := Record{Namespace: "agent/peer", Kind: KindTurn, Author: "peer", Key: "k", Tags: []string{"turn:01J", "source:operator", ""}}
	k := recordKeys{b: make([]byte, 0, r.keysLen())}
	got := [][]byte{k.record(7), k.namespace(r.Namespace, 7), k.field(r.Namespace, kv.FieldKind, string(r.Kind), 7),
		k.field(r.Namespace, kv.FieldAuthor, r.Author, 7), k.field(r.Namespace, kv.FieldKey, r.Key, 7)}
	want := [][]byte{kv.RecordKey(7), kv.WithSeq(kv.NamespacePrefix(r.Namespace), 7), kv.WithSeq(kv.FieldPrefix(r.Namespace, kv.FieldKind, string(r.Kind)), 7),
		kv.WithSeq(kv.FieldPrefix(r.Namespace, kv.FieldAuthor, r.Author), 7), kv.WithSeq(kv.FieldPrefix(r.Namespace, kv.FieldKey, r.Key), 7)}
	for _, tag := range r.Tags {
		got = append(got, k.field(r.Namespace, kv.FieldTag, tag, 7))
		want = append(want, kv.WithSeq(kv.FieldPrefix(r.Namespace, kv.FieldTag, tag), 7))
	}
	if len(k.b) != r.keysLen() || cap(k.b) != r.keysLen() {
		t.Errorf("keys take %d bytes (buffer %d), keysLen says %d", len(k.b), cap(k.b), r.keysLen())
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("key %d = %q, want %q", i, got[i], want[i])
		}
	}
	_ = append(got[0], 0xff)
	if !bytes.Equal(got[1], want[1]) {
		t.Errorf("appending to a key changed the next: %q", got[1])
	}
}
