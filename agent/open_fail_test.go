package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenFailureReleasesStore: a part that fails while the store opens
// behind it (here the payment ledger's directory, which a file is in the
// way of) fails Open, and the store it opened is closed again — the next
// Open of the same data dir is not refused as in use.
func TestOpenFailureReleasesStore(t *testing.T) {
	const yaml = `
agents:
  - name: payer
    wallet: {chain_id: 3338, rpc: "http://127.0.0.1:1"}
    safety:
      spend:
        payees: ["0x00000000000000000000000000000000000000a1"]
        limits: [{chain: 3338, asset: native, per_payment: 1000, per_hour: 10000, per_day: 100000}]
`
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "data", "wallet")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openFleetErr(t, path, yaml); err == nil || !strings.Contains(err.Error(), "wallet of payer") {
		t.Fatalf("Open with the wallet dir blocked = %v, want the wallet's error", err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if _, err := openFleetErr(t, path, yaml); err != nil {
		t.Fatalf("Open after a failed one: %v", err)
	}
}
