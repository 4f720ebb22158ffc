package gentest

import (
	"bytes"
	"flag"
	"go/format"
	"os"
	"testing"

	"github.com/depai/depai/sdk/internal/codecgen"
)

var update = flag.Bool("update", false, "rewrite codecs.go")

// TestGeneratedIsCurrent checks that codecs.go is, gofmt'ed, what the
// generator writes today (go test -run TestGeneratedIsCurrent
// ./sdk/internal/codecgen/gentest -args -update rewrites it).
func TestGeneratedIsCurrent(t *testing.T) {
	src, err := format.Source(codecgen.Generate(Config, Tools))
	if err != nil {
		t.Fatalf("generated source does not parse: %v", err)
	}
	if *update {
		if err := os.WriteFile("codecs.go", src, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile("codecs.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, src) {
		t.Error("codecs.go is stale: go test -run TestGeneratedIsCurrent ./sdk/internal/codecgen/gentest -args -update")
	}
}
