package memory_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/depai/depai/memory"
)

// A bad tag is refused and named by its place in Tags.
func TestPutRefusesBadTags(t *testing.T) {
	db := openDB(t, memory.Config{})
	defer db.Close()
	for _, c := range []struct {
		tags []string
		want string
	}{
		{[]string{"ok", "a\x00b"}, `tags[1] "a\x00b" contains a NUL byte`},
		{[]string{strings.Repeat("x", 1025)}, "tags[0]"},
		{[]string{"ok", "", "x"}, "tags[1] is empty"},
	} {
		_, err := db.Put(context.Background(), memory.Record{Namespace: "a", Kind: memory.KindObservation, Text: "t", Tags: c.tags})
		if !errors.Is(err, memory.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tags %.20q: %v; want ErrInvalid naming %s", c.tags, err, c.want)
		}
	}
}
