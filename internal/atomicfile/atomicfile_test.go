package atomicfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/depai/depai/internal/atomicfile"
)

func TestWriteReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	for _, want := range []string{"old", "new"} {
		if err := atomicfile.Write(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Fatalf("after writing %q: %q, %v", want, got, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".state.json-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// A write that cannot finish names the file and leaves the old content.
func TestWriteFailureKeepsTheOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := atomicfile.Write(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	// A directory in the way of the rename makes it fail after the data
	// was written and synced.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.Write(blocked, []byte("new"))
	if err == nil || !strings.Contains(err.Error(), blocked) {
		t.Fatalf("write over a non-empty directory: %v; want an error naming %s", err, blocked)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("the other file changed: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".blocked-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
