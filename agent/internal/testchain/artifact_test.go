package testchain

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestArtifactMatchesSource recompiles the test contracts in
// agent/wallet/testdata with npm solc and compares them with the shipped
// artifacts (token_gen.go, ids_gen.go).
func TestArtifactMatchesSource(t *testing.T) {
	solc := Tool(t, "solcjs", "SOLCJS")
	src, err := filepath.Abs(filepath.Join("..", "..", "wallet", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, contract, abi, bin string }{
		{"EIP3009Token.sol", "EIP3009Token", TokenABI, TokenBin},
		{"PeaqDID.sol", "PeaqDID", PeaqDIDABI, PeaqDIDBin},
		{"IoIDRegistry.sol", "IoIDRegistry", IoIDRegistryABI, IoIDRegistryBin},
	} {
		out := t.TempDir()
		cmd := exec.Command(solc, "--optimize", "--bin", "--abi", "-o", out, c.file)
		cmd.Dir = src // the same relative source name as gen.sh, so the metadata hash agrees
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("solcjs %s: %v\n%s", c.file, err, b)
		}
		base := strings.TrimSuffix(c.file, ".sol") + "_sol_" + c.contract
		bin, err := os.ReadFile(filepath.Join(out, base+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		abi, _ := os.ReadFile(filepath.Join(out, base+".abi"))
		if strings.TrimSpace(string(bin)) != c.bin || strings.TrimSpace(string(abi)) != c.abi {
			t.Errorf("the artifact of %s is out of date: run agent/wallet/testdata/gen.sh", c.file)
		}
	}
}
