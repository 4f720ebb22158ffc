package memory

import (
	"fmt"
	"strings"
	"testing"
)

// A full read cache still takes new records, within its byte bound.
func TestReadCacheFull(t *testing.T) {
	const ringBytes = 64 << 10 // 16 KiB of cache
	var c readCache
	text := strings.Repeat("x", 600)
	for key := uint64(0); key < 2*readCacheSlots; key++ {
		rec := Record{ID: fmt.Sprint("id", key), Seq: key, Kind: KindTurn, Text: text}
		c.put(key, &rec, ringBytes)
		if got, ok := c.get(key, rec.ID); !ok || got.Text != text {
			t.Fatalf("record %d was not kept (the cache holds %d bytes)", key, c.bytes)
		}
		if c.bytes > ringBytes/4 {
			t.Fatalf("after record %d the cache holds %d bytes, over its bound of %d", key, c.bytes, ringBytes/4)
		}
	}
	fact := Record{ID: "fact", Kind: KindFact, Text: "v"}
	if c.put(7, &fact, ringBytes); func() bool { _, ok := c.get(7, "fact"); return ok }() {
		t.Error("a fact was kept")
	}
}
