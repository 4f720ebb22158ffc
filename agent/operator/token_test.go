package operator_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/depai/depai/agent/operator"
)

func TestLoadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", operator.TokenFileName)
	tok, created, err := operator.LoadOrCreateToken(path)
	if err != nil || !created {
		t.Fatalf("first run: %q, created %v, %v", tok, created, err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
		t.Errorf("token %q is not 32 bytes of hex", tok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	again, created, err := operator.LoadOrCreateToken(path)
	if err != nil || created || again != tok {
		t.Errorf("second run: %q, created %v, %v; want the first token reused", again, created, err)
	}
	other, _, err := operator.LoadOrCreateToken(filepath.Join(t.TempDir(), operator.TokenFileName))
	if err != nil || other == tok {
		t.Errorf("a second data dir got token %q (%v); want a different one", other, err)
	}
}

func TestReadTokenRejects(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		err     string
	}{
		{"readable by others", "abc\n", 0o644, "readable by other users"},
		{"empty", "\n", 0o600, "is empty"},
		{"two words", "abc def\n", 0o600, "more than one line or word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), operator.TokenFileName)
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if _, _, err := operator.LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want it to name %s and say %q", err, path, tt.err)
			}
		})
	}
	if _, err := operator.ReadToken(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadToken of a missing file: %v, want fs.ErrNotExist", err)
	}
}
