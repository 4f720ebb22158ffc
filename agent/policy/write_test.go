package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// An operator's write commits with its audit decision (one commit: the
// same Recorded time, consecutive Seqs); its outcome follows; a viewer's is
// refused and stores nothing; a reused key is refused and on record.
func TestAuthorizeWrite(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	l, err := policy.OpenLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	state, err := policy.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(ctx, policy.Config{Log: l, State: state})
	if err != nil {
		t.Fatal(err)
	}
	put := func(by policy.Principal, key, text string) (memory.Written, error) {
		a := policy.Action{Principal: by, Kind: policy.ActionTool, Name: "memory.put", Effect: wire.EffectWrite, Target: "shared"}
		return e.AuthorizeWrite(ctx, a, memory.Write{Key: key, Recs: []memory.Record{{Namespace: "shared", Kind: memory.KindObservation, Text: text}}})
	}
	w, err := put(operator, "op:1", "pallet at B2")
	if err != nil || !w.First || len(w.Recs) != 1 {
		t.Fatalf("put = %+v, %v", w, err)
	}
	// The outcome is written after AuthorizeWrite returns; wait for it, so
	// the decision is told apart from it (the newest audit record was taken
	// for the decision, and the CI once found the outcome there).
	var audit []memory.Record
	for deadline := time.Now().Add(10 * time.Second); len(audit) < 2 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		audit = audit[:0]
		for r, err := range db.Query(ctx, memory.Query{Namespace: policy.AuditNamespace, Ascending: true}) {
			if err != nil {
				t.Fatal(err)
			}
			audit = append(audit, r)
		}
	}
	if len(audit) != 2 {
		t.Fatalf("%d audit records, want the decision and the outcome", len(audit))
	}
	decision := audit[0]
	var en policy.Entry
	if err := json.Unmarshal(decision.Data, &en); err != nil || en.Phase != policy.PhaseDecision {
		t.Fatalf("first audit record %s (%v), want the decision", decision.Data, err)
	}
	if decision.Seq+1 != w.Recs[0].Seq || !decision.Recorded.Equal(w.Recs[0].Recorded) {
		t.Errorf("decision seq %d at %v, record seq %d at %v: want one commit", decision.Seq, decision.Recorded, w.Recs[0].Seq, w.Recs[0].Recorded)
	}
	if again, err := put(operator, "op:1", "pallet at B2"); err != nil || again.First || again.Recs[0].ID != w.Recs[0].ID {
		t.Errorf("retry = %+v, %v; want the first record", again, err)
	}
	if _, err := put(operator, "op:1", "pallet at B3"); !errors.Is(err, memory.ErrKeyReused) {
		t.Errorf("reused key: %v, want ErrKeyReused", err)
	}
	var we *wire.Error
	if _, err := put(viewer, "vi:1", "x"); !errors.As(err, &we) || we.Code != wire.CodeForbidden {
		t.Errorf("viewer's put: %v, want forbidden", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if db.LastSeq() == 0 {
		t.Fatal("nothing stored")
	}
	n := 0
	for r, err := range db.Query(ctx, memory.Query{Namespace: "shared"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if r.Text != "pallet at B2" {
			t.Errorf("stored %q", r.Text)
		}
	}
	if n != 1 {
		t.Errorf("%d records in shared, want 1", n)
	}
	rep, err := policy.Verify(ctx, db)
	if err != nil || !rep.OK() {
		t.Fatalf("audit verify: %v\n%s", err, rep)
	}
	// decision+outcome for the put, its replay and the reused key; the viewer's denial.
	if rep.Entries != 7 {
		t.Errorf("%d audit entries, want 7", rep.Entries)
	}
	var outcomes []policy.Entry
	for r, err := range db.Query(ctx, memory.Query{Namespace: policy.AuditNamespace, Tags: []string{"phase:outcome"}, Ascending: true}) {
		if err != nil {
			t.Fatal(err)
		}
		var en policy.Entry
		if err := json.Unmarshal(r.Data, &en); err != nil {
			t.Fatal(err)
		}
		outcomes = append(outcomes, en)
	}
	if len(outcomes) != 3 || outcomes[0].Error != nil || outcomes[2].Error == nil || !json.Valid(outcomes[1].Result) {
		t.Errorf("outcomes = %+v, want success, replay, reused-key error", outcomes)
	}
}
