package config_test

import (
	"fmt"

	"github.com/depai/depai/agent/config"
)

func ExampleLoad() {
	f, err := config.Load("testdata/fleet.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("operator API on", f.Operator.Addr)
	for _, a := range f.Agents {
		fmt.Printf("%s (%s): %d plugins, model %q, at most %d model calls per turn within %v\n",
			a.Name, a.Role, len(a.Plugins), a.Model.Model, a.Limits.ModelCalls, a.Limits.WallTime)
	}

	_, err = config.Parse("fleet.yaml", []byte("agents:\n  - name: scout\n    modle: gpt-4o\n"))
	fmt.Println(err)
	// Output:
	// operator API on 127.0.0.1:7701
	// scout (robot): 2 plugins, model "llama3.2", at most 4 model calls per turn within 45s
	// dispatcher (digital): 0 plugins, model "", at most 8 model calls per turn within 2m0s
	// fleet.yaml:3: agents[0].modle: unknown key (did you mean "model"?)
}
