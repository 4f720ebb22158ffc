package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// nodeModules is where scripts/test installs the npm packages the interop
// tests use (the MCP TypeScript SDK, as the independent implementation).
func nodeModules(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DEPAI_NPM_CACHE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "depai", "npm")
	}
	dir = filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("the MCP TypeScript SDK is not installed in %s: run scripts/test, which installs it (%v)", dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: run scripts/test")
	}
	return dir
}

// nodeScript copies a testdata script beside a node_modules link, so its
// bare imports resolve.
func nodeScript(t *testing.T, name string) string {
	t.Helper()
	mods := nodeModules(t)
	dir := t.TempDir()
	if err := os.Symlink(mods, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "mcp", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMCPServerWithTheTypeScriptClient: `depai mcp` serves a running
// fleet's tools to the MCP TypeScript SDK's client, through the policy.
func TestMCPServerWithTheTypeScriptClient(t *testing.T) {
	client := nodeScript(t, "client.mjs")
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleet, []byte("name: rover\nrole: robot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	srv := startRun(t, nil, fleet, "--data", data, "--addr", "127.0.0.1:0")
	cmd := exec.Command("node", client, depaiBin, data)
	cmd.Env = testEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the TypeScript client failed: %v\n%s\n%s", err, out, srv.stderr.String())
	}
	var got struct {
		Tools []string
		Clock struct {
			IsError bool
			Text    string
		}
		Put, Stop, BadArgs struct {
			IsError bool
			Text    string
		}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("client output %s: %v", out, err)
	}
	// depai run joins the mesh by default, so the fleet tools are there too.
	want := []string{"rover.agent.status", "rover.ask", "rover.clock", "rover.command", "rover.fleet.delegate", "rover.fleet.status", "rover.fleet.tasks", "rover.memory.put", "rover.memory.search"}
	if fmt.Sprint(got.Tools) != fmt.Sprint(want) {
		t.Errorf("tools = %v, want %v", got.Tools, want)
	}
	if got.Clock.IsError || !strings.Contains(got.Clock.Text, "unix") {
		t.Errorf("rover.clock = %+v", got.Clock)
	}
	if got.Put.IsError || !strings.Contains(got.Put.Text, `"id"`) {
		t.Errorf("rover.memory.put = %+v", got.Put)
	}
	if got.Stop.IsError || !strings.Contains(got.Stop.Text, "EMERGENCY STOP engaged") {
		t.Errorf("/stop over MCP = %+v", got.Stop)
	}
	if !got.BadArgs.IsError || !strings.Contains(got.BadArgs.Text, "invalid_argument") {
		t.Errorf("bad arguments = %+v, want a tool error", got.BadArgs)
	}
	// It went through the fleet's policy and audit like any operator's call.
	if code := srv.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("depai run exit %d", code)
	}
	audit, _, _ := depai(t, "", nil, "audit", "verify", "--data", data)
	if !strings.Contains(audit, "chain verified") {
		t.Errorf("audit after MCP calls: %s", audit)
	}
}

// TestMCPClientWithTheTypeScriptServer: an agent uses the tools of an MCP
// server written with the TypeScript SDK, under its policy.
func TestMCPClientWithTheTypeScriptServer(t *testing.T) {
	server := nodeScript(t, "server.mjs")
	node, _ := exec.LookPath("node")
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	yaml := fmt.Sprintf(`name: arm
role: robot
mcp:
  - name: tstools
    command: [%q, %q]
    env: {SECRET_TOKEN: DEPAI_TEST_MCP_SECRET}
    timeout: 2s
safety:
  actuators:
    - tool: arm.move
      max_speed: 1
`, node, server)
	if err := os.WriteFile(fleet, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	in := strings.Join([]string{
		`/call geo.distance {"lat1":52.52,"lon1":13.405,"lat2":52.53,"lon2":13.405}`, // waits for the server to connect
		"/tools",
		`/call arm.move {"lat":52.52,"lon":13.4,"speed":0.5}`,
		`/call arm.move {"lat":52.52,"lon":13.4,"speed":5}`,
		`/call fails {}`,
		`/call hangs {}`,
	}, "\n") + "\n"
	out, stderr, code := depai(t, in, []string{"DEPAI_TEST_MCP_SECRET=s3cret"}, "run", fleet, "--chat", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0")
	// The /tools table's columns are as wide as its longest tool name.
	for _, want := range []string{`geo\.distance +mcp:tstools +- `, `arm\.move +mcp:tstools +actuator `, `"text": "1112"`, `moved at 0\.5 \(env s3cret, HOME unset\)`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", want, out, stderr)
		}
	}
	for _, want := range []string{"above the limit of 1.00 m/s", "fails failed: no such luck", "did not answer hangs within 2s"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1 (three calls failed)", code)
	}
}
