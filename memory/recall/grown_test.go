package recall

import "testing"

// TestGrownSlack: the document table and the tag hashes, which grow with
// every record, keep at most an eighth of their length (or 64) as slack,
// where append keeps up to a quarter, and keep what was appended.
func TestGrownSlack(t *testing.T) {
	var s []uint32
	for i := range uint32(200_000) {
		s = grown(s, i)
		if cap(s) > len(s)+max(len(s)/8, 64) {
			t.Fatalf("at %d elements, capacity %d", len(s), cap(s))
		}
	}
	for i, v := range s {
		if v != uint32(i) {
			t.Fatalf("element %d is %d", i, v)
		}
	}
}
