package build

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestConcurrentBuildKeepsTheFirstArtifact: a second build of a key that
// another finished meanwhile (two agents loading one plugin) leaves the
// first artifact in place, the same file, rather than replacing the one
// an agent may be starting (the clean-clone CI saw "exec: permission
// denied" from the process launcher, whose Landlock rule named the file
// replaced under it).
func TestConcurrentBuildKeepsTheFirstArtifact(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"go.mod": "module tiny\n\ngo 1.26\n", "main.go": "package main\n\nfunc main() {}\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "artifact")
	opts := Options{Dir: dir, Target: Native, Go: "go"}
	inode := func() uint64 {
		fi, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if err := goBuild(context.Background(), opts, dir, dst); err != nil {
		t.Fatal(err)
	}
	first := inode()
	if err := goBuild(context.Background(), opts, dir, dst); err != nil {
		t.Fatalf("second build of the same key: %v", err)
	}
	if got := inode(); got != first {
		t.Fatalf("the second build replaced the artifact (inode %d → %d)", first, got)
	}
}
