package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/tool"
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

// depai embedded in a robot's own Go program: the program's in-process tool
// is offered like any other, and the policy the config states holds for it.
func ExampleOptions_inProcessTool() {
	dir, _ := os.MkdirTemp("", "depai-example-")
	defer os.RemoveAll(dir)
	file, err := config.Parse(filepath.Join(dir, "robot.yaml"), []byte(`
name: arm
role: robot
safety:
  actuators:
    - tool: arm.move
      max_speed: 0.5   # m/s
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	type move struct {
		Joint string  `json:"joint"`
		Angle float64 `json:"angle"`
		Speed float64 `json:"speed"`
	}
	armMove, _ := tool.New("arm.move", "Move one joint.", tool.EffectActuator,
		func(_ context.Context, m move) (string, error) {
			return fmt.Sprintf("%s at %.0f°", m.Joint, m.Angle), nil // the robot's own driver goes here
		})
	ctx := context.Background()
	fleet, err := agent.Open(ctx, file, agent.Options{
		DataDir: filepath.Join(dir, "data"),
		Tools:   map[string][]tool.Tool{"arm": {armMove}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fleet.Close(ctx)

	arm, _ := fleet.Agent("arm")
	for _, in := range []string{
		`/call arm.move {"joint":"elbow","angle":30,"speed":0.2}`,
		`/call arm.move {"joint":"elbow","angle":90,"speed":2}`,
	} {
		reply, err := arm.Ask(ctx, agent.Input{Text: in})
		fmt.Println(reply, err)
	}
	// Output:
	// "elbow at 30°" <nil>
	//  denied: speed 2.00 m/s is above the limit of 0.50 m/s for arm.move
}
