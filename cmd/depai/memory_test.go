package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/depai/depai/memory"
)

// memoryCLI runs `depai memory ARGS` in-process.
func memoryCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newMemoryCmd()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// seedMemory writes records into DATA/memory the way `depai run` would.
func seedMemory(t *testing.T, data string) []memory.Record {
	t.Helper()
	db, err := memory.Open(context.Background(), memory.Config{Dir: filepath.Join(data, "memory")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var recs []memory.Record
	for i := range 5 {
		ns := "agent/scout"
		if i%2 == 1 {
			ns = "fleet/site-a"
		}
		out, err := db.Put(context.Background(), memory.Record{Namespace: ns, Kind: memory.KindObservation, Text: fmt.Sprint("obs ", i), Tags: []string{"t"}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, out...)
	}
	return recs
}

func TestMemoryCmd(t *testing.T) {
	data := t.TempDir()
	recs := seedMemory(t, data)

	t.Run("get", func(t *testing.T) {
		out, _, err := memoryCLI(t, "", "get", recs[2].ID, "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		var got memory.Record
		if err := json.Unmarshal([]byte(out), &got); err != nil || got.ID != recs[2].ID || got.Text != "obs 2" {
			t.Errorf("get printed %q (%v)", out, err)
		}
		if _, _, err := memoryCLI(t, "", "get", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--data", data); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("get unknown: %v", err)
		}
	})

	t.Run("search", func(t *testing.T) {
		out, stderr, err := memoryCLI(t, "", "search", "obs", "3", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 || !strings.Contains(lines[1], recs[3].ID) || !strings.Contains(stderr, "bm25 only") {
			t.Errorf("search printed\n%s\n%s", out, stderr)
		}
		out, _, err = memoryCLI(t, "", "search", "obs", "--ns", "fleet", "--data", data)
		if err != nil || strings.Contains(out, "agent/scout") || !strings.Contains(out, "fleet/site-a") {
			t.Errorf("search --ns fleet printed %q (%v)", out, err)
		}
	})

	t.Run("stats", func(t *testing.T) {
		out, _, err := memoryCLI(t, "", "stats", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`records\s+5\n`, `agent/scout\s+3\n`, `fleet/site-a\s+2\n`, `disk\s+\d+\.\d [KM]iB\n`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("stats lacks %q:\n%s", want, out)
			}
		}
		out, _, err = memoryCLI(t, "", "stats", "--json", "--data", data)
		var st memory.Stats
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Records != 5 || st.Namespaces["agent/scout"] != 3 {
			t.Errorf("stats --json = %q, %v", out, err)
		}
	})

	file := filepath.Join(t.TempDir(), "mem.jsonl")
	t.Run("export", func(t *testing.T) {
		_, stderr, err := memoryCLI(t, "", "export", "-o", file, "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, "exported 5 records") {
			t.Errorf("stderr %q", stderr)
		}
		out, _, err := memoryCLI(t, "", "export", "--ns", "fleet", "--data", data)
		if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"obs 3"`) {
			t.Errorf("export --ns fleet = %q, %v", out, err)
		}
		if _, _, err := memoryCLI(t, "", "export", "--ns", "fleet/", "--data", data); err == nil || !strings.Contains(err.Error(), "--ns") {
			t.Errorf("export --ns fleet/: %v", err)
		}
	})

	t.Run("import round trip", func(t *testing.T) {
		other := t.TempDir()
		out, _, err := memoryCLI(t, "", "import", file, "--data", other)
		if err != nil || !strings.Contains(out, "imported 5 of 5") {
			t.Fatalf("import = %q, %v", out, err)
		}
		again, _, err := memoryCLI(t, "", "export", "--data", other)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(file)
		if again != string(want) {
			t.Errorf("export after import differs:\n%s\n---\n%s", again, want)
		}
	})

	t.Run("import malformed", func(t *testing.T) {
		good, _ := os.ReadFile(file)
		lines := strings.SplitAfter(string(good), "\n")
		bad := lines[0] + "{not json\n" + lines[1]
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--all-or-nothing"}, "imported 0 of 3"},
			{nil, "imported 2 of 3"},
		} {
			other := t.TempDir()
			out, stderr, err := memoryCLI(t, bad, append([]string{"import", "-", "--data", other}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), "malformed") {
				t.Errorf("import %v: err %v, want malformed lines", tt.args, err)
			}
			if !strings.Contains(stderr, "-: line 2:") || !strings.Contains(out, tt.want) {
				t.Errorf("import %v: stdout %q stderr %q", tt.args, out, stderr)
			}
		}
	})

	t.Run("no store", func(t *testing.T) {
		empty := t.TempDir()
		_, _, err := memoryCLI(t, "", "stats", "--data", empty)
		if err == nil || !strings.Contains(err.Error(), "no memory store at "+filepath.Join(empty, "memory")) {
			t.Errorf("stats on an empty data dir: %v", err)
		}
		if _, err := os.Stat(filepath.Join(empty, "memory")); err == nil {
			t.Error("stats created a store")
		}
	})
}
