package recall

import (
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/depai/depai/memory"
)

// TestDocWithoutTextKey: a document saved by a build before text keys
// (Query.Distinct) ends after its tags; it still loads, with no key, and
// one saved now loads with its key. The key fits the document's padding.
func TestDocWithoutTextKey(t *testing.T) {
	x := &Index{}
	x.resetState()
	x.cond = sync.NewCond(&x.mu)
	x.add([]memory.Record{{ID: "01M8W8T320000000000003GYPH", Seq: 1, Namespace: "agent/peer", Kind: memory.KindTurn,
		Text: "ping 7", Tags: []string{"a", "b"}, Time: time.Unix(1, 0)}})
	saved := x.encodeDoc(0)
	for _, tt := range []struct {
		name string
		b    []byte
		want uint32
	}{
		{"saved now", saved, textKey("ping 7")},
		{"saved before text keys", saved[:len(saved)-4], 0},
	} {
		y := &Index{}
		y.resetState()
		if err := y.decodeDoc(0, tt.b); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if d := y.docs[0]; d.text != tt.want || d.seq != 1 || len(y.tagsOf(&d)) != 2 || y.docID(0) != "01M8W8T320000000000003GYPH" {
			t.Errorf("%s: loaded %+v (tags %v), want text key %d", tt.name, d, y.tagsOf(&d), tt.want)
		}
	}
	if n := unsafe.Sizeof(doc{}); n != 72 {
		t.Errorf("a document takes %d bytes, want 72: it is what grows with every record", n)
	}
}
