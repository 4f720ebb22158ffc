package mesh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/mesh"
)

// Two agents on one embedded node: bob serves his inbox, alice asks him.
func ExampleStart() {
	dir, _ := os.MkdirTemp("", "mesh-example")
	defer os.RemoveAll(dir)
	newKey := func(name string) *identity.Identity {
		id, _, err := identity.LoadOrCreate(identity.Config{Path: dir + "/identity/" + name + ".key"})
		if err != nil {
			panic(err)
		}
		return id
	}
	node, err := mesh.Start(context.Background(), mesh.Config{
		Name: "site-a", Node: newKey("site-a"), DataDir: dir,
		Agents: []mesh.AgentConfig{{Name: "alice", Identity: newKey("alice")}, {Name: "bob", Identity: newKey("bob")}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Shutdown()
	bob, _ := node.Agent("bob")
	bob.Serve(mesh.HandlerFunc(func(_ context.Context, env mesh.Envelope) (json.RawMessage, error) {
		return json.RawMessage(`"pump-3 is fine"`), nil
	}))
	alice, _ := node.Agent("alice")
	reply, err := alice.Ask(context.Background(), "bob", json.RawMessage(`"how is pump-3?"`), mesh.AskOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.FromName, string(reply.Payload))
	// Output: bob "pump-3 is fine"
}
