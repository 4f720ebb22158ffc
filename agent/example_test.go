package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
)

// An agent with no model still answers operator commands.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "depai-example-")
	defer os.RemoveAll(dir)
	file, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte("name: rover\nrole: robot\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	fleet, err := agent.Open(ctx, file, agent.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fleet.Close(ctx)

	rover, _ := fleet.Agent("rover")
	reply, _ := rover.Ask(ctx, agent.Input{Text: "/tools"})
	fmt.Println(reply)
	// Output:
	// TOOL           SOURCE   EFFECT  DESCRIPTION
	// agent.status   builtin  -       The status of every agent in the fleet.
	// clock          builtin  -       The current time.
	// memory.put     builtin  write   Remember something: an observation, a fact, a task.
	// memory.search  builtin  -       Search the agent's memory: past turns, observations, facts and readings.
}
