package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMemoryVerifyCmd(t *testing.T) {
	data := t.TempDir()
	seedMemory(t, data)
	store := filepath.Join(data, "memory")

	out, _, err := memoryCLI(t, "", "verify", "--data", data)
	if err != nil || !strings.Contains(out, "5 records") || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("verify of a sound store: %v\n%s", err, out)
	}

	// Garbage inside the table: verify names it and exits non-zero; export
	// refuses instead of writing fewer records with exit status 0.
	ssts, _ := filepath.Glob(filepath.Join(store, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table")
	}
	b, err := os.ReadFile(ssts[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b)/2; i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(ssts[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = memoryCLI(t, "", "verify", "--data", data)
	if err == nil || !strings.Contains(out, "DAMAGED: "+filepath.Base(ssts[0])) {
		t.Fatalf("verify of a damaged store: err %v\n%s", err, out)
	}
	if _, _, err := memoryCLI(t, "", "export", "--data", data); err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "--repair") {
		t.Fatalf("export of a damaged store: %v, want a damage error saying how to repair", err)
	}

	out, _, err = memoryCLI(t, "", "verify", "--repair", "--data", data)
	if err != nil || !strings.Contains(out, "repaired") || !strings.Contains(out, "lost") {
		t.Fatalf("verify --repair: %v\n%s", err, out)
	}
	if _, _, err := memoryCLI(t, "", "verify", "--data", data); err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
	if _, _, err := memoryCLI(t, "", "stats", "--data", data); err != nil {
		t.Fatalf("stats after repair: %v", err)
	}
}

func TestMemoryReadOnlyFlag(t *testing.T) {
	data := t.TempDir()
	recs := seedMemory(t, data)
	out, _, err := memoryCLI(t, "", "export", "--read-only", "--data", data)
	if err != nil || strings.Count(out, "\n") != len(recs) {
		t.Fatalf("export --read-only: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(data, "memory", "LOCK")); err == nil {
		t.Error("a read-only export left a LOCK file")
	}
}
