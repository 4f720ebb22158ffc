package backoff

import (
	"testing"
	"time"
)

func TestBackoffGrowsAndResets(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	bounds := []time.Duration{10, 20, 40, 80, 80}
	for i, hi := range bounds {
		hi *= time.Millisecond
		if d := b.Next(); d < hi/2 || d > hi {
			t.Fatalf("attempt %d: %v; want within [%v, %v]", i, d, hi/2, hi)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %v; want ≤ 10ms", d)
	}
}
