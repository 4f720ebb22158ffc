package host_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/depai/depai/agent/host"
)

// TestQuarantineIsDurable: a quarantine and its release survive reopening
// the record (a restart), and each write leaves one whole file.
func TestQuarantineIsDurable(t *testing.T) {
	dir := t.TempDir()
	q, err := host.OpenQuarantine(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Lookup("rover", "motors"); ok {
		t.Fatal("a new record quarantines motors")
	}
	if err := q.Put("rover", "motors", "crash loop: exit status 3"); err != nil {
		t.Fatal(err)
	}
	if err := q.Put("rover", "lidar", "did not acknowledge a stop"); err != nil {
		t.Fatal(err)
	}
	q, err = host.OpenQuarantine(dir)
	if err != nil {
		t.Fatal(err)
	}
	if why, ok := q.Lookup("rover", "motors"); !ok || why != "crash loop: exit status 3" {
		t.Errorf("after reopening: motors %q %v", why, ok)
	}
	if _, ok := q.Lookup("other", "motors"); ok {
		t.Error("another agent's plugin of the same name is quarantined")
	}
	if got := q.List("rover"); len(got) != 2 {
		t.Errorf("List = %v", got)
	}
	if ok, err := q.Release("rover", "motors"); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	if ok, _ := q.Release("rover", "motors"); ok {
		t.Error("a second Release reports a quarantine")
	}
	q, _ = host.OpenQuarantine(dir)
	if _, ok := q.Lookup("rover", "motors"); ok {
		t.Error("the release did not survive reopening")
	}
	if _, ok := q.Lookup("rover", "lidar"); !ok {
		t.Error("lidar's quarantine was lost")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != host.QuarantineFile {
		t.Errorf("the data dir holds %v, want only %s (no temporary files left)", entries, host.QuarantineFile)
	}
	if fi, _ := os.Stat(filepath.Join(dir, host.QuarantineFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestUnreadableQuarantineQuarantinesEverything: a damaged record fails
// closed — every plugin is quarantined, saying why, the damaged bytes are
// kept — until each is released, and releases survive a restart.
func TestUnreadableQuarantineQuarantinesEverything(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":     `{"version":1,"plugins":{"rover/mot`,
		"wrong version": `{"version":9}`,
		"not json":      "\x00\x01garbage",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, host.QuarantineFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			q, err := host.OpenQuarantine(dir)
			if err != nil {
				t.Fatal(err)
			}
			if why := q.Broken(); !strings.Contains(why, "could not be read") || !strings.Contains(why, path) {
				t.Errorf("Broken = %q", why)
			}
			for _, p := range []string{"motors", "weather"} {
				if why, ok := q.Lookup("rover", p); !ok || !strings.Contains(why, "every plugin is quarantined") {
					t.Errorf("%s: %q %v, want quarantined", p, why, ok)
				}
			}
			if b, err := os.ReadFile(path + ".damaged"); err != nil || string(b) != content {
				t.Errorf("the damaged record was not kept: %q %v", b, err)
			}
			if ok, err := q.Release("rover", "weather"); !ok || err != nil {
				t.Fatalf("Release = %v, %v", ok, err)
			}
			q, _ = host.OpenQuarantine(dir)
			if _, ok := q.Lookup("rover", "weather"); ok {
				t.Error("the release did not survive reopening")
			}
			if _, ok := q.Lookup("rover", "motors"); !ok {
				t.Error("after one release the others were let go")
			}
		})
	}
}
