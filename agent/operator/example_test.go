package operator_test

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/policy"
)

// echoAgent echoes what it is sent.
type echoAgent struct{}

func (echoAgent) Name() string { return "echo" }
func (echoAgent) Status() agent.Status {
	return agent.Status{Name: "echo", State: "idle", Model: "none"}
}
func (echoAgent) Handle(ctx context.Context, in agent.Input) iter.Seq2[agent.Event, error] {
	return func(yield func(agent.Event, error) bool) {
		if yield(agent.Event{Type: agent.EventDelta, Text: in.Text}, nil) {
			yield(agent.Event{Type: agent.EventReply, Text: in.Text}, nil)
		}
	}
}

func ExampleNewServer() {
	srv, err := operator.NewServer(operator.Config{
		Addr:   "127.0.0.1:0",                 // a free port; srv.Addr() says which
		Agents: []operator.Agent{echoAgent{}}, // in depai run: the agents of agent.Open
		// In depai run: the generated token (operator.LoadOrCreateToken) is
		// the admin "operator"; the config's operator.operators add more.
		Operators: []operator.Operator{{Name: "operator", Role: policy.RoleAdmin, Token: "secret"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	agents, err := operator.NewClient(srv.Addr(), "secret").Agents(context.Background())
	fmt.Println(agents[0].Name, agents[0].State, err)
	// Output: echo idle <nil>
}

func ExampleNewClient() {
	srv, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: []operator.Agent{echoAgent{}}, Operators: []operator.Operator{{Name: "ada", Role: policy.RoleOperator, Token: "secret"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	c := operator.NewClient(srv.Addr(), "secret")
	for ev, err := range c.Send(context.Background(), "echo", "hello") {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ev.Type, ev.Text)
	}
	// Output:
	// delta hello
	// reply hello
}

func ExampleLoadOrCreateToken() {
	dir, err := os.MkdirTemp("", "depai-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, operator.TokenFileName)

	first, created, err := operator.LoadOrCreateToken(path) // first run: generated, stored 0600
	fmt.Println(len(first), created, err)
	again, created, err := operator.LoadOrCreateToken(path) // later runs: reused
	fmt.Println(again == first, created, err)
	// Output:
	// 64 true <nil>
	// true false <nil>
}
