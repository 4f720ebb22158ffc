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
	contracts := []struct{ file, contract, abi, bin string }{
		{"EIP3009Token.sol", "EIP3009Token", TokenABI, TokenBin},
		{"PeaqDID.sol", "PeaqDID", PeaqDIDABI, PeaqDIDBin},
		{"IoIDRegistry.sol", "IoIDRegistry", IoIDRegistryABI, IoIDRegistryBin},
	}
	// One solcjs run for all (its start-up is most of the time); each
	// contract's metadata names only its own source, so the output is the
	// same as gen.sh's one run per file.
	out := t.TempDir()
	args := []string{"--optimize", "--bin", "--abi", "-o", out}
	for _, c := range contracts {
		args = append(args, c.file)
	}
	cmd := exec.Command(solc, args...)
	cmd.Dir = src // the same relative source names as gen.sh, so the metadata hash agrees
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("solcjs: %v\n%s", err, b)
	}
	for _, c := range contracts {
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
