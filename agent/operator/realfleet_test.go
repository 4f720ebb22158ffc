package operator_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/operator"
)

// TestRealFleet serves a real fleet (badger memory, built-in tools, no
// model) and drives it through the client: commands and a free-text turn.
func TestRealFleet(t *testing.T) {
	srv := startServer(t, openFleet(t, `
agents:
  - name: scout
    role: robot
    memory: {read: [agent/scout], write: [agent/scout]}
  - name: planner
    role: digital
`))
	c := operator.NewClient(srv.Addr(), testToken)

	list, err := c.Agents(t.Context())
	if err != nil || len(list) != 2 || list[0].Name != "scout" || list[0].Model != "none" {
		t.Fatalf("Agents = %+v, %v", list, err)
	}

	tests := []struct{ text, want string }{
		{"/status", "scout"},
		{"/tools", "clock"},
		{"/call clock {}", "20"}, // the year of an RFC 3339 time
		{"where are you?", "no model configured"},
		{`/call memory.put {"text":"parked at dock 4"}`, `"id"`},
		{"/memory search dock", "parked at dock 4"},
	}
	for _, tt := range tests {
		var reply agent.Event
		n := 0
		for ev, err := range c.Send(t.Context(), "scout", tt.text) {
			if err != nil {
				t.Fatalf("%s: %v", tt.text, err)
			}
			n++
			reply = ev
		}
		if reply.Type != agent.EventReply || !strings.Contains(reply.Text, tt.want) {
			t.Errorf("%s: last of %d events %+v, want a reply containing %q", tt.text, n, reply, tt.want)
		}
	}

	resp, body := request(t, srv, "POST", "/v1/agents/planner/messages", "Bearer "+testToken, `{"text":"/status"}`, "Accept", "application/json")
	var res operator.TurnResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || resp.StatusCode != 200 || !strings.Contains(res.Reply.Text, "planner") {
		t.Errorf("JSON /status: %d %s (%v)", resp.StatusCode, body, err)
	}
}

// openFleet opens the fleet of a config (badger memory in a temp dir) until
// the test ends and returns its agents.
func openFleet(t *testing.T, yaml string) []operator.Agent {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := agent.Open(t.Context(), cfg, agent.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fleet.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	var agents []operator.Agent
	for _, a := range fleet.Agents() {
		agents = append(agents, a)
	}
	return agents
}
