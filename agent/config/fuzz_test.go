package config_test

import (
	"errors"
	"os"
	"testing"

	"github.com/depai/depai/agent/config"
)

// FuzzParse checks that no input makes Parse panic, and that what it returns
// is either a valid config or errors that name the file.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/fleet.yaml", "testdata/agent.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			var e *config.Error
			if !errors.As(err, &e) || e.File != "fuzz.yaml" {
				t.Fatalf("error %q is not a *config.Error naming the file", err)
			}
			return
		}
		if len(file.Agents) == 0 {
			t.Fatal("no error and no agents")
		}
		for _, a := range file.Agents {
			if a.Name == "" || a.Limits.ModelCalls <= 0 || a.Limits.WallTime <= 0 || a.Memory.Read == nil {
				t.Fatalf("accepted agent without defaults: %+v", a)
			}
		}
	})
}
