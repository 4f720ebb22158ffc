package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditVerify: the chain a real run writes verifies; an edited copy of
// it (export, edit, import — what a hand on the data dir can do) does not.
func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleet, []byte("name: rover\nrole: robot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if out, stderr, code := depai(t, "/stop\n/resume\n/call memory.put {\"text\":\"x\"}\n", nil, "run", fleet, "--chat", "--data", data, "--addr", "127.0.0.1:0"); code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, stderr)
	}
	out, stderr, code := depai(t, "", nil, "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(out, "chain verified") || !strings.Contains(out, "entries") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, stderr)
	}

	dump := filepath.Join(dir, "dump.jsonl")
	if _, stderr, code := depai(t, "", nil, "memory", "export", "--data", data, "-o", dump); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"action":"estop.release","target":"fleet","phase":"event","decision":"allow"`, `"action":"estop.release","target":"fleet","phase":"event","decision":"deny"`, 1)
	if edited == string(b) {
		t.Fatalf("no estop.release entry to edit in\n%s", b)
	}
	if err := os.WriteFile(dump, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(dir, "copy")
	if _, stderr, code := depai(t, "", nil, "memory", "import", "--data", copyDir, dump); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	out, _, code = depai(t, "", nil, "audit", "verify", "--data", copyDir)
	if code != 1 || !strings.Contains(out, "was changed after it was written") {
		t.Fatalf("verify of an edited log: exit %d\n%s", code, out)
	}
}
