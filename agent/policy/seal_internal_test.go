package policy

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/depai/depai/sdk/wire"
)

// seal writes what json.Marshal writes for the sealed entry — the stored
// audit record is that encoding, and Verify re-seals it.
func TestSealIsMarshal(t *testing.T) {
	for _, e := range []Entry{
		{N: 1, Time: time.Date(2026, 12, 1, 23, 0, 0, 1, time.UTC), Principal: Principal{Kind: PrincipalModel}, Action: "memory.put", Phase: PhaseDecision, Decision: Allow},
		{N: 2, Agent: "rover-1", Principal: Principal{Kind: PrincipalOperator, ID: "op", Role: RoleAdmin}, Kind: ActionTool, Action: "drive", Target: "<fleet>&",
			Phase: PhaseOutcome, Args: json.RawMessage(`{"a": "b <c>"}`), Result: json.RawMessage(`[1,2]`), Error: &wire.Error{Code: wire.CodeDenied, Message: "no \u2028"}, Ref: 1, Count: 3, Lost: []uint64{4, 5}, TraceID: "t"},
	} {
		got, err := e.seal("prev-hash")
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seal = %s\nwant   %s", got, want)
		}
		if !e.check() {
			t.Errorf("entry %d does not check after seal", e.N)
		}
	}
}
