package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
)

func openStore(t *testing.T) *memory.DB {
	t.Helper()
	db, err := memory.Open(context.Background(), memory.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openLog(t *testing.T, db memory.Store) *policy.Log {
	t.Helper()
	l, err := policy.OpenLog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func writeEntries(t *testing.T, l *policy.Log, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := l.Write(context.Background(), policy.Entry{
				Agent: "rover-1", Principal: policy.Principal{Kind: policy.PrincipalModel}, Kind: policy.ActionTool,
				Action: "drive.to", Phase: policy.PhaseDecision, Decision: policy.Allow, Args: json.RawMessage(`{"lat":1,"i":` + string(rune('0'+i%10)) + `}`),
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestAuditChainVerifies(t *testing.T) {
	db := openStore(t)
	l := openLog(t, db)
	writeEntries(t, l, 50)
	rep, err := policy.Verify(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Entries != 50 || rep.Head != 50 {
		t.Fatalf("report: %s", rep)
	}
	// A reopened log continues the chain.
	l.Close()
	l2 := openLog(t, db)
	writeEntries(t, l2, 3)
	if rep, _ = policy.Verify(context.Background(), db); !rep.OK() || rep.Head != 53 {
		t.Fatalf("after reopen: %s", rep)
	}
}

// tamper exports the store, lets edit change the JSONL lines, and imports
// them into a fresh store: how an edit or a deletion of the data dir looks.
func tamper(t *testing.T, db *memory.DB, edit func(lines []string) []string) *memory.DB {
	t.Helper()
	var buf bytes.Buffer
	if _, err := memory.Export(context.Background(), db, &buf, memory.Query{Ascending: true}); err != nil {
		t.Fatal(err)
	}
	lines := edit(strings.Split(strings.TrimSpace(buf.String()), "\n"))
	out := openStore(t)
	if _, err := out.Import(context.Background(), strings.NewReader(strings.Join(lines, "\n")+"\n"), memory.ImportOptions{AllOrNothing: true}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	db := openStore(t)
	l := openLog(t, db)
	writeEntries(t, l, 5)
	l.Close()
	tests := []struct {
		name string
		edit func([]string) []string
		want string
	}{
		{"an edited decision", func(ls []string) []string {
			edited := strings.Replace(ls[2], `"phase":"decision","decision":"allow"`, `"phase":"decision","decision":"deny"`, 1)
			if edited == ls[2] {
				t.Fatalf("nothing to edit in %s", ls[2])
			}
			ls[2] = edited
			return ls
		}, "was changed after it was written"},
		{"a deleted entry", func(ls []string) []string { return append(ls[:1], ls[2:]...) }, "entry #2 is missing"},
		{"a forged record in another namespace", func(ls []string) []string {
			return append(ls, `{"id":"01JZZZZZZZZZZZZZZZZZZZZZZZ","seq":99,"namespace":"agent/rover-1","kind":"audit","author":"rover-1","time":"2026-01-01T00:00:00Z","recorded":"2026-01-01T00:00:00Z","text":"estop.release fleet"}`)
		}, "only the core writes audit records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := policy.Verify(context.Background(), tamper(t, db, tt.edit))
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.Contains(rep.String(), tt.want) {
				t.Fatalf("report does not say %q:\n%s", tt.want, rep)
			}
		})
	}
}
