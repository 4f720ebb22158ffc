// Package plugins_test holds the dependency rule of first-party plugins: a
// plugin's code (tests aside) imports sdk/ and nothing of the agent, the
// memory or the CLI, and no other plugin — only the shared plugins/internal.
package plugins_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/depai/depai/"

func TestPluginsImportOnlySDK(t *testing.T) {
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		plugin := strings.SplitN(filepath.ToSlash(path), "/", 2)[0] // gnss, ntrip … or internal
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			rel, ours := strings.CutPrefix(p, module)
			if !ours {
				continue
			}
			switch {
			case rel == "sdk" || strings.HasPrefix(rel, "sdk/wire") || strings.HasPrefix(rel, "sdk/schema"):
			case strings.HasPrefix(rel, "plugins/internal/"):
			case strings.HasPrefix(rel, "plugins/"+plugin+"/"):
			default:
				t.Errorf("%s imports %s; a plugin imports sdk/ (and plugins/internal, its own packages) only", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files; is the walk in the right directory?", checked)
	}
}
