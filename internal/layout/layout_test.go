// Package layout holds the test that keeps depai's dependency rules: what a
// plugin author imports never reaches the core, and memory never reaches
// the agent.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/depai/depai/"

type pkg struct {
	ImportPath string
	Deps       []string
}

// rules: a package under the first prefix may not depend, even
// indirectly, on a package under any of the second.
var rules = []struct {
	from   string
	denied []string
}{
	{"sdk", []string{"agent", "memory"}},
	{"plugins", []string{"agent", "memory"}},
	{"examples", []string{"agent", "memory"}},
	{"memory", []string{"agent"}},
}

// exceptions are the known breaks of a rule, each with its reason; the test
// fails once one is no longer needed, so the list cannot go stale.
var exceptions = map[string]string{
	// The in-process plugin test helper runs a plugin against the real
	// host; agent/host/hosttest replaces it (running the real build), and
	// sdk/plugintest goes once the first-party plugins' tests have moved.
	"sdk/plugintest": "runs plugins in the real host, in-process",
}

func TestDependencyRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", module+"...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		if _, ok := exceptions[rel]; ok {
			excepted := false
			for _, d := range p.Deps {
				excepted = excepted || strings.HasPrefix(d, module+"agent/") || strings.HasPrefix(d, module+"memory")
			}
			if !excepted {
				t.Errorf("%s no longer breaks the rules: remove it from exceptions", rel)
			}
			continue
		}
		for _, r := range rules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			checked++
			for _, d := range p.Deps {
				drel, ours := strings.CutPrefix(d, module)
				if !ours {
					continue
				}
				for _, denied := range r.denied {
					if drel == denied || strings.HasPrefix(drel, denied+"/") {
						t.Errorf("%s depends on %s: %s/ may not reach %s/ (see CONTRIBUTING.md, Dependency rules)", p.ImportPath, d, r.from, denied)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked: the module path or the layout changed")
	}
}
