package testchain

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestArtifactMatchesSource recompiles agent/wallet/testdata/EIP3009Token.sol
// with npm solc and compares it with the shipped artifact (token_gen.go).
func TestArtifactMatchesSource(t *testing.T) {
	solc := Tool(t, "solcjs", "SOLCJS")
	src, err := filepath.Abs(filepath.Join("..", "..", "wallet", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(solc, "--optimize", "--bin", "--abi", "-o", out, "EIP3009Token.sol")
	cmd.Dir = src // the same relative source name as gen.sh, so the metadata hash agrees
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("solcjs: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(filepath.Join(out, "EIP3009Token_sol_EIP3009Token.bin"))
	if err != nil {
		t.Fatal(err)
	}
	abi, _ := os.ReadFile(filepath.Join(out, "EIP3009Token_sol_EIP3009Token.abi"))
	if strings.TrimSpace(string(bin)) != TokenBin || strings.TrimSpace(string(abi)) != TokenABI {
		t.Fatal("token_gen.go is out of date with EIP3009Token.sol: run agent/wallet/testdata/gen.sh")
	}
}
