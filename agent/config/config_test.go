package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/sdk/wire"
)

func abs(t testing.TB, path string) string {
	t.Helper()
	a, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadFleet(t *testing.T) {
	f, err := config.Load("testdata/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	temp := float32(0.2)
	want := &config.File{
		Path:     "testdata/fleet.yaml",
		Operator: config.Operator{Addr: "127.0.0.1:7701"},
		DataDir:  abs(t, "testdata/data"),
		Mesh:     config.Mesh{Mode: config.MeshEmbedded},
		Agents: []config.Agent{
			{
				Name:    "scout",
				Role:    "robot",
				Persona: "You are a survey rover. Be brief.",
				Model: config.Model{
					BaseURL: "http://127.0.0.1:11434/v1", Model: "llama3.2", APIKeyEnv: "OLLAMA_KEY",
					MaxTokens: 512, Temperature: &temp, Timeout: config.Duration(30 * time.Second), FirstByteTimeout: config.DefaultFirstByteTimeout,
				},
				Tools: []string{"memory.search", "clock"},
				Plugins: []config.Plugin{
					{
						Name: "gnss", Path: abs(t, "testdata/plugins/gnss"), Transport: "process",
						Grants: config.Grants{Emit: []string{"gnss.fix"}, Clock: true, Actuator: true},
						Limits: config.PluginLimits{CallTimeout: config.Duration(2 * time.Second), Concurrency: 1},
					},
					{
						Name: "weather", Path: abs(t, "testdata/plugins/weather.wasm"), Transport: "wasm",
						SHA256:  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
						Grants:  config.Grants{HTTP: []string{"api.weather.local"}, Secrets: []string{"api_key"}},
						Config:  map[string]string{"units": "metric", "retries": "3"},
						Secrets: map[string]string{"api_key": "WEATHER_API_KEY"},
						Limits:  config.PluginLimits{Memory: 32 << 20, MaxMessage: 256 << 10},
					},
				},
				Memory: config.Memory{
					Read:    []string{"agent/scout", "fleet/site-a", "shared"},
					Write:   []string{"agent/scout", "shared"},
					Profile: "lowmem",
				},
				Limits: config.Limits{ModelCalls: 4, ToolCalls: 16, WallTime: config.Duration(45 * time.Second), Tokens: 32000, Depth: 4, Inbox: 64, Concurrency: 2},
				Safety: config.Safety{Actuators: []config.ActuatorRule{{
					Tool: "drive", MaxRate: "2/s", MaxSpeed: 1.5,
					KeepOut: []config.Zone{{Name: "pond", Lat: 52.52, Lon: 13.405, RadiusM: 25}},
				}}, ApprovalTimeout: config.DefaultApproval},
				Schedule:  []config.Schedule{{Every: config.Duration(10 * time.Minute), Input: "report your position"}},
				Operators: []string{"alice"},
			},
			{
				Name:    "dispatcher",
				Role:    "digital",
				Model:   config.Model{Timeout: config.DefaultModelTimeout, FirstByteTimeout: config.DefaultFirstByteTimeout},
				Persona: "You assign survey jobs to rovers.",
				Memory:  config.Memory{Read: []string{"agent/dispatcher", "shared"}, Write: []string{"agent/dispatcher", "shared"}, Profile: "default"},
				Limits:  config.Limits{ModelCalls: 8, ToolCalls: 16, WallTime: config.Duration(2 * time.Minute), Tokens: 32000, Depth: 4, Inbox: 64, Concurrency: 2},
				Safety:  config.Safety{ApprovalTimeout: config.DefaultApproval},
			},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", f, want)
	}
	n, per, err := f.Agents[0].Safety.Actuators[0].Rate()
	if n != 2 || per != time.Second || err != nil {
		t.Errorf("Rate() = %v, %v, %v; want 2, 1s, nil", n, per, err)
	}
}

func TestLoadSingleAgent(t *testing.T) {
	f, err := config.Load("testdata/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Agents) != 1 || f.Agents[0].Name != "solo" || f.Agents[0].Model.BaseURL != "" {
		t.Fatalf("agents = %+v; want one agent solo with no model", f.Agents)
	}
	if f.Operator.Addr != "" {
		t.Errorf("operator addr = %q; want it empty (the CLI picks one)", f.Operator.Addr)
	}
}

// TestToolsAbsentOrEmpty: an agent without a tools key gets every built-in
// tool (nil), one with `tools: []` none (an empty list, not nil).
func TestToolsAbsentOrEmpty(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want []string
	}{
		{"name: a\n", nil},
		{"name: a\ntools: []\n", []string{}},
		{"name: a\ntools: [clock]\n", []string{"clock"}},
	} {
		f, err := config.Parse("fleet.yaml", []byte(tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Agents[0].Tools; (got == nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
			t.Errorf("%q: Tools = %#v, want %#v", tt.yaml, got, tt.want)
		}
	}
}

func TestOperatorsAndModelKeys(t *testing.T) {
	f, err := config.Parse("/etc/depai/fleet.yaml", []byte(`
name: a
model: {base_url: "http://127.0.0.1:8080/v1", stream: false, first_byte_timeout: 5s, timeout: 2m}
operator:
  operators:
    - {name: alice, role: viewer, token_file: tokens/alice}
    - {name: ci-bot, role: operator, token_env: DEPAI_CI_TOKEN}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []config.OperatorToken{
		{Name: "alice", Role: config.RoleViewer, TokenFile: "/etc/depai/tokens/alice"},
		{Name: "ci-bot", Role: config.RoleOperator, TokenEnv: "DEPAI_CI_TOKEN"},
	}
	if !reflect.DeepEqual(f.Operator.Operators, want) {
		t.Errorf("operators = %+v; want %+v", f.Operator.Operators, want)
	}
	m := f.Agents[0].Model
	if m.Streaming() || m.FirstByteTimeout != config.Duration(5*time.Second) || m.Timeout != config.Duration(2*time.Minute) {
		t.Errorf("model = %+v; want stream false, first byte 5s, timeout 2m", m)
	}
	if !(config.Model{}).Streaming() {
		t.Error("a model without stream: is not streamed; want streaming by default")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load("testdata/nope.yaml")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "testdata/nope.yaml") {
		t.Fatalf("Load of a missing file: %v; want a not-exist error naming the file", err)
	}
}

func TestErrors(t *testing.T) {
	missing := abs(t, "testdata/plugins/nope.wasm")
	readme := abs(t, "testdata/plugins/readme.txt")
	wasm := abs(t, "testdata/plugins/weather.wasm")
	gnss := abs(t, "testdata/plugins/gnss")
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"typo", "agents:\n  - name: a\n    modle: {}\n",
			`fleet.yaml:3: agents[0].modle: unknown key (did you mean "model"?)`},
		{"typo nested", "agents:\n  - name: a\n    limits:\n      wall_tme: 1s\n",
			`fleet.yaml:4: agents[0].limits.wall_tme: unknown key (did you mean "wall_time"?)`},
		{"unknown key", "name: a\nlimits:\n  zzzzzzzz: 1\n",
			`fleet.yaml:3: limits.zzzzzzzz: unknown key (expected one of model_calls, tool_calls, wall_time, tokens, depth, inbox, concurrency)`},
		{"spend keys of the old format", "name: a\nsafety:\n  spend: {daily_limit: 5}\n",
			`fleet.yaml:3: safety.spend.daily_limit: unknown key (expected one of payees, limits)`},
		{"spend without a wallet", "name: a\nsafety:\n  spend:\n    payees: ['*']\n    limits: [{chain: 3338, asset: native, per_payment: 1, per_hour: 2, per_day: 3}]\n",
			`fleet.yaml:5: safety.spend.limits: a spend policy needs a wallet to pay from; add wallet: {chain_id, rpc}`},
		{"the audit namespace granted", "name: a\nmemory: {write: [audit]}\n",
			`fleet.yaml:2: memory.write: namespace "audit" is reserved for the audit log, which only depai itself writes (read it with /audit or depai audit verify)`},
		{"two rules for one tool", "name: a\nsafety:\n  actuators:\n    - tool: drive\n    - tool: drive\n",
			`fleet.yaml:5: safety.actuators[1].tool: tool "drive" already has a rule (at line 4); put all of a tool's limits in one rule`},
		{"unknown top key", "agents: [{name: a}]\nplugins: []\n",
			`fleet.yaml:2: plugins: unknown key (expected one of operator, data_dir, agents, mesh)`},
		{"duplicate key", "name: a\nrole: robot\nrole: digital\n",
			`fleet.yaml:3: role: duplicate key (first at line 2)`},
		{"missing name", "agents:\n  - role: robot\n",
			`fleet.yaml:2: agents[0]: missing required key "name"`},
		{"null agent", "agents:\n  -\n",
			`fleet.yaml:2: agents[0].name: missing agent name`},
		{"no agents", "agents: []\n",
			`fleet.yaml:1: agents: expected at least one agent`},
		{"string as list", "name: a\ntools: clock\n",
			`fleet.yaml:2: tools: expected a list, got string "clock"`},
		{"list as string", "name: [a]\n",
			`fleet.yaml:1: name: expected a string, got a list`},
		{"number as string", "name: a\npersona: 12\n",
			`fleet.yaml:2: persona: expected a string, got integer "12" (quote it to make it a string)`},
		{"word as int", "name: a\nlimits: {model_calls: many}\n",
			`fleet.yaml:2: limits.model_calls: expected an integer, got string "many"`},
		{"yes is not a bool", "name: a\nplugins: [{path: testdata/plugins/gnss, transport: process, grants: {clock: yes}}]\n",
			`fleet.yaml:2: plugins[0].grants.clock: expected true or false, got string "yes"`},
		{"mapping as struct", "name: a\nmodel: http://x\n",
			`fleet.yaml:2: model: expected a mapping, got string "http://x"`},
		{"bare number duration", "name: a\nlimits:\n  wall_time: 90\n",
			`fleet.yaml:3: limits.wall_time: invalid duration "90" (expected a number with a unit, such as "90s", "2m" or "1h30m")`},
		{"wake outside reads", "name: a\nmemory: {read: [fleet]}\nwake:\n  - namespace: shared\n",
			`fleet.yaml:4: wake[0].namespace: namespace "shared" is not within memory.read (fleet)`},
		{"wake without namespace", "name: a\nwake:\n  - kinds: [observation]\n",
			`fleet.yaml:3: wake[0]: missing required key "namespace"`},
		{"embeddings without model", "name: a\nmemory:\n  embeddings: {base_url: http://127.0.0.1:1/v1}\n",
			`fleet.yaml:3: memory.embeddings: missing model (the embedding model's name, such as "nomic-embed-text")`},
		{"embeddings bad url", "name: a\nmemory:\n  embeddings: {base_url: ftp://x, model: e}\n",
			`fleet.yaml:3: memory.embeddings.base_url: invalid URL "ftp://x" (expected http:// or https:// and a host, such as "http://127.0.0.1:11434/v1")`},
		{"embeddings disagree", "agents:\n  - name: a\n    memory:\n      embeddings: {base_url: http://h/v1, model: e1}\n  - name: b\n    memory:\n      embeddings: {base_url: http://h/v1, model: e2}\n",
			`fleet.yaml:7: agents[1].memory.embeddings: differs from the memory.embeddings at line 4 (the fleet shares one recall index, so one embeddings endpoint)`},
		{"min_free disagree", "agents:\n  - name: a\n    memory: {min_free: 16MiB}\n  - name: b\n    memory:\n      min_free: 32MiB\n",
			`fleet.yaml:6: agents[1].memory.min_free: 32MiB differs from the memory.min_free 16MiB at line 3 (the fleet shares one store, so one threshold)`},
		{"negative min_free", "name: a\nmemory: {min_free: -1MiB}\n",
			`fleet.yaml:2: memory.min_free: must not be negative, got -1MiB`},
		{"bad min_free", "name: a\nmemory:\n  min_free: lots\n",
			`fleet.yaml:3: memory.min_free: invalid size "lots" (expected bytes, or a number with a unit such as "512KiB", "64MiB" or "10MB")`},
		{"negative limit", "name: a\nlimits:\n  tool_calls: -1\n",
			`fleet.yaml:3: limits.tool_calls: must be positive, got -1`},
		{"zero limit", "name: a\nlimits:\n  tokens: 0\n",
			`fleet.yaml:3: limits.tokens: must be positive, got 0`},
		{"negative duration", "name: a\nmodel: {timeout: -5s}\n",
			`fleet.yaml:2: model.timeout: must not be negative, got -5s`},
		{"bad size", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    limits: {memory: 64XB}\n    transport: process\n",
			`fleet.yaml:4: plugins[0].limits.memory: invalid size "64XB" (expected bytes, or a number with a unit such as "512KiB", "64MiB" or "10MB")`},
		{"negative size", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    limits: {max_message: -1MiB}\n    transport: process\n",
			`fleet.yaml:4: plugins[0].limits.max_message: must not be negative, got -1MiB`},
		{"unknown role", "name: a\nrole: drone\n",
			`fleet.yaml:2: role: unknown value "drone" (expected robot or digital)`},
		{"unknown profile", "name: a\nmemory: {profile: tiny}\n",
			`fleet.yaml:2: memory.profile: unknown value "tiny" (expected default or lowmem)`},
		{"temperature range", "name: a\nmodel: {temperature: 3}\n",
			`fleet.yaml:2: model.temperature: 3 is out of range (expected 0 to 2)`},
		{"latitude range", "name: a\nsafety:\n  actuators:\n    - tool: drive\n      keep_out: [{lat: 91, lon: 0, radius_m: 1}]\n",
			`fleet.yaml:5: safety.actuators[0].keep_out[0].lat: 91 is out of range (expected -90 to 90)`},
		{"bad rate", "name: a\nsafety:\n  actuators:\n    - tool: drive\n      max_rate: fast\n",
			`fleet.yaml:5: safety.actuators[0].max_rate: invalid rate "fast" (expected calls per period, such as "2/s", "30/min" or "100/h")`},
		{"agent call without tools", "name: a\nsafety:\n  agent_calls:\n    - from: dispatcher\n",
			`fleet.yaml:4: safety.agent_calls[0]: no tools (expected tools: [NAME, …]; a name may end in "*"; to allow nothing, leave the agent out)`},
		{"agent call bad pattern", "name: a\nsafety:\n  agent_calls:\n    - from: dispatcher\n      tools: [\"dr*ve\"]\n",
			`fleet.yaml:5: safety.agent_calls[0].tools: invalid tool "dr*ve" (expected a tool's name, or a prefix ending in "*" such as "robot.*")`},
		{"agent call bad agent", "name: a\nsafety:\n  agent_calls:\n    - from: \"a b\"\n      tools: [drive.to]\n",
			`fleet.yaml:4: safety.agent_calls[0].from: invalid agent name "a b" (expected an agent's name, or "*" for any fleet agent)`},
		{"rule without tool", "name: a\nsafety:\n  actuators:\n    - max_speed: 1\n",
			`fleet.yaml:4: safety.actuators[0]: missing required key "tool"`},
		{"duplicate agents", "agents:\n  - name: a\n  - name: b\n  - name: a\n",
			`fleet.yaml:4: agents[2].name: duplicate agent name "a" (first at line 2)`},
		{"bad agent name", "name: my agent\n",
			`fleet.yaml:1: name: invalid name "my agent" (expected up to 64 letters, digits, '-' or '_', starting with a letter or digit)`},
		{"duplicate plugins", "name: a\nplugins:\n  - {path: testdata/plugins/gnss, transport: process}\n  - name: gnss\n    path: testdata/plugins/weather.wasm\n",
			`fleet.yaml:4: plugins[1].name: duplicate plugin name "gnss" (first at line 3)`},
		{"missing plugin", "name: a\nplugins:\n  - path: testdata/plugins/nope.wasm\n",
			`fleet.yaml:3: plugins[0].path: ` + missing + `: no such file or directory`},
		{"plugin not runnable", "name: a\nplugins:\n  - path: testdata/plugins/readme.txt\n",
			`fleet.yaml:3: plugins[0].path: ` + readme + ` is neither a WASM module nor an executable`},
		{"wasm as process", "name: a\nplugins:\n  - path: testdata/plugins/weather.wasm\n    transport: process\n",
			`fleet.yaml:4: plugins[0].transport: ` + wasm + ` is a WASM module, not a process plugin`},
		{"process as wasm", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    transport: wasm\n",
			`fleet.yaml:4: plugins[0].transport: ` + gnss + ` is not a WASM module (no \0asm header)`},
		{"unknown transport", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    transport: grpc\n",
			`fleet.yaml:4: plugins[0].transport: unknown value "grpc" (expected wasm or process)`},
		{"bad sha", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    sha256: abc\n    transport: process\n",
			`fleet.yaml:4: plugins[0].sha256: invalid SHA-256 "abc" (expected 64 hex digits)`},
		{"undefined secret", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    grants: {secrets: [token]}\n    transport: process\n",
			`fleet.yaml:4: plugins[0].grants.secrets[0]: secret "token" is granted but not defined under plugins[0].secrets`},
		{"secret value not env", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    secrets:\n      token: sk-12345\n    transport: process\n",
			`fleet.yaml:5: plugins[0].secrets.token: invalid environment variable name "sk-12345" (the name of the variable holding the secret, not the secret)`},
		{"config value list", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    config:\n      hosts: [a, b]\n    transport: process\n",
			`fleet.yaml:5: plugins[0].config.hosts: expected a string, got a list`},
		{"duplicate config key", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    config:\n      host: a\n      host: b\n    transport: process\n",
			`fleet.yaml:6: plugins[0].config.host: duplicate key (first at line 5)`},
		{"duplicate grant", "name: a\nplugins:\n  - path: testdata/plugins/gnss\n    grants: {http: [a.example, a.example]}\n    transport: process\n",
			`fleet.yaml:4: plugins[0].grants.http[1]: duplicate host "a.example" (also plugins[0].grants.http[0])`},
		{"bad namespace", "name: a\nmemory:\n  write: [agent//a]\n",
			`fleet.yaml:3: memory.write[0]: invalid namespace "agent//a" (expected "/"-separated names such as "agent/scout" or "shared")`},
		{"dot-dot namespace", "name: a\nmemory:\n  read: [agent/..]\n",
			`fleet.yaml:3: memory.read[0]: invalid namespace "agent/.." (expected "/"-separated names such as "agent/scout" or "shared")`},
		{"bad base url", "name: a\nmodel:\n  base_url: localhost:11434\n",
			`fleet.yaml:3: model.base_url: invalid URL "localhost:11434" (expected http:// or https:// and a host, such as "http://127.0.0.1:11434/v1")`},
		{"key in file", "name: a\nmodel:\n  api_key: sk-proj-abc\n",
			`fleet.yaml:3: model.api_key: unknown key: secrets do not go in the config file; put the key in an environment variable and name it in api_key_env`},
		{"key in env", "name: a\nmodel:\n  api_key_env: sk-proj-abc\n",
			`fleet.yaml:3: model.api_key_env: invalid environment variable name "sk-proj-abc" (the name of the variable, not the key itself)`},
		{"schedule without input", "name: a\nschedule:\n  - every: 1m\n    input: \"  \"\n",
			`fleet.yaml:3: schedule[0].input: missing input (the message the agent receives each time)`},
		{"schedule zero", "name: a\nschedule:\n  - every: 0s\n    input: hi\n",
			`fleet.yaml:3: schedule[0].every: must be positive, got 0s`},
		{"schedule missing every", "name: a\nschedule:\n  - input: hi\n",
			`fleet.yaml:3: schedule[0]: missing required key "every"`},
		{"bad operator addr", "name: a\noperator: {addr: \"7700\"}\n",
			`fleet.yaml:2: operator.addr: invalid address "7700" (expected host:port, such as "127.0.0.1:7700")`},
		{"operator without token", "name: a\noperator:\n  operators:\n    - {name: alice, role: viewer}\n",
			`fleet.yaml:4: operator.operators[0]: missing token_file or token_env (where operator "alice"'s token is)`},
		{"operator two tokens", "name: a\noperator:\n  operators:\n    - {name: alice, role: viewer, token_file: a, token_env: A}\n",
			`fleet.yaml:4: operator.operators[0].token_env: both token_file and token_env are set; keep one`},
		{"operator bad role", "name: a\noperator:\n  operators:\n    - {name: alice, role: root, token_env: A}\n",
			`fleet.yaml:4: operator.operators[0].role: unknown value "root" (expected viewer or operator or admin)`},
		{"operator reserved name", "name: a\noperator:\n  operators:\n    - {name: operator, role: admin, token_env: A}\n",
			`fleet.yaml:4: operator.operators[0].name: name "operator" is the generated token's admin (operator.token_file); pick another`},
		{"operator duplicate", "name: a\noperator:\n  operators:\n    - {name: bob, role: admin, token_env: A}\n    - {name: bob, role: viewer, token_env: B}\n",
			`fleet.yaml:5: operator.operators[1].name: duplicate operator name "bob" (first at line 4)`},
		{"operator token value in env", "name: a\noperator:\n  operators:\n    - {name: bob, role: admin, token_env: \"abc-123\"}\n",
			`fleet.yaml:4: operator.operators[0].token_env: invalid environment variable name "abc-123" (the name of the variable, not the token itself)`},
		{"duplicate tool", "name: a\ntools: [clock, clock]\n",
			`fleet.yaml:2: tools[1]: duplicate tool "clock" (also tools[0])`},
		{"syntax", "name: a\n  role: robot\n",
			`fleet.yaml:2: invalid YAML: mapping values are not allowed in this context`},
		{"tab", "name: a\n\trole: robot\n",
			`fleet.yaml:2: invalid YAML: found a tab character that violates indentation`},
		{"empty", "", `fleet.yaml: empty file: expected an agent (name: …) or a fleet (agents: […])`},
		{"comment only", "# nothing\n", `fleet.yaml: empty file: expected an agent (name: …) or a fleet (agents: […])`},
		{"top list", "- name: a\n", `fleet.yaml:1: expected a mapping (an agent's keys, or agents: […]), got a list`},
		{"two documents", "name: a\n---\nname: b\n",
			`fleet.yaml:2: a second YAML document: put several agents under agents: in one document`},
		{"several errors", "agents:\n  - name: a\n    rol: robot\n    limits: {tokens: -3}\n",
			"fleet.yaml:3: agents[0].rol: unknown key (did you mean \"role\"?)\nfleet.yaml:4: agents[0].limits.tokens: must be positive, got -3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("fleet.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded; want error %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			var e *config.Error
			if !errors.As(err, &e) || e.File != "fleet.yaml" {
				t.Errorf("errors.As(*config.Error) = %v, file %q; want a *config.Error for fleet.yaml", e, e.File)
			}
		})
	}
}

// TestPluginFileKind: a plugin file's transport is told from its first
// bytes, as the host tells it, and a native program must be executable.
func TestPluginFileKind(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file, content string
		mode          os.FileMode
		transport     string // "" when the config must be refused
		err           string
	}{
		{"script", "#!/bin/sh\nexit 0\n", 0o755, "", `script is a native executable: a process plugin runs native code, confined by the kernel but not sandboxed like WASM; add "transport: process"`},
		{"elf", "\x7fELF\x02\x01", 0o755, "", `elf is a native executable`},
		{"module", "\x00asm\x01\x00\x00\x00", 0o644, config.TransportWASM, ""},
		{"unknown.bin", "hello world", 0o755, "", "is neither a WASM module nor an executable"},
		{"noexec", "#!/bin/sh\nexit 0\n", 0o644, "", "without execute permission"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			f, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte("name: a\nplugins:\n  - path: "+tc.file+"\n"))
			if tc.transport == "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse = %v; want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Agents[0].Plugins[0].Transport; got != tc.transport {
				t.Errorf("transport = %q, want %q", got, tc.transport)
			}
		})
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	const y = `
defaults: &lim {model_calls: 2}
`
	if _, err := config.Parse("a.yaml", []byte(y)); err == nil {
		t.Fatal("an unknown top-level anchor holder was accepted")
	}
	const ok = `
agents:
  - name: a
    limits: &lim {model_calls: 2}
  - name: b
    limits: *lim
`
	f, err := config.Parse("a.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if f.Agents[1].Limits.ModelCalls != 2 {
		t.Errorf("aliased limits: model_calls = %d; want 2", f.Agents[1].Limits.ModelCalls)
	}
	const cycle = "agents: &a [*a]\n"
	if _, err := config.Parse("a.yaml", []byte(cycle)); err == nil {
		t.Fatal("a cyclic alias was accepted")
	}
}

func TestByteSizeAndDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want config.ByteSize
	}{
		{"1024", 1024}, {"64MiB", 64 << 20}, {"512KiB", 512 << 10}, {"10MB", 10e6}, {"1 GiB", 1 << 30}, {"3B", 3},
	} {
		f, err := config.Parse("a.yaml", []byte("name: a\nplugins: [{path: testdata/plugins/gnss, transport: process, limits: {memory: "+tc.in+"}}]\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := f.Agents[0].Plugins[0].Limits.Memory; got != tc.want {
			t.Errorf("%s = %d; want %d", tc.in, got, tc.want)
		}
	}
	if s := config.ByteSize(64 << 20).String(); s != "64MiB" {
		t.Errorf("String() = %q; want 64MiB", s)
	}
	if d := config.Duration(90 * time.Second); d.Std() != 90*time.Second || d.String() != "1m30s" {
		t.Errorf("Duration: %v %q", d.Std(), d.String())
	}
}

// TestPluginGrantsWithinAgent: a plugin may not be granted a namespace its
// agent cannot read or write itself (a plugin once planted instructions in
// another agent's memory this way).
func TestPluginGrantsWithinAgent(t *testing.T) {
	_, err := config.Parse("fleet.yaml", []byte(`name: scout
memory: {read: [agent/scout, shared], write: [agent/scout]}
plugins:
  - path: testdata/plugins/weather.wasm
    grants: {memory_read: [shared/maps], memory_write: [agent/dispatcher]}
`))
	want := `fleet.yaml:5: plugins[0].grants.memory_write[0]: namespace "agent/dispatcher" is not within the agent's memory.write (agent/scout): a plugin is never granted more than its agent "scout" holds`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "memory_read") {
		t.Fatalf("Parse = %v; want exactly\n%s", err, want)
	}
}

// TestProcessGrants: files, net and unconfined_ok are checked, and files
// and net are refused for a WASM plugin, which has neither.
func TestProcessGrants(t *testing.T) {
	f, err := config.Parse("fleet.yaml", []byte(`name: a
plugins:
  - path: testdata/plugins/gnss
    transport: process
    grants: {files: [{path: plugins/readme.txt}, {path: /dev/ttyUSB0, mode: rw}], net: ["127.0.0.1:2947"]}
    unconfined_ok: [pidns]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := f.Agents[0].Plugins[0].Grants
	if g.Files[0].Path != abs(t, "plugins/readme.txt") || g.Files[0].Mode != wire.FileRO || g.Files[1].Mode != wire.FileRW || g.Net[0] != "127.0.0.1:2947" {
		t.Fatalf("grants = %+v", g)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"  - path: testdata/plugins/gnss\n    transport: process\n    grants: {files: [{path: /x, mode: rwx}]}\n", `plugins[0].grants.files[0].mode: unknown mode "rwx" (expected ro or rw)`},
		{"  - path: testdata/plugins/gnss\n    transport: process\n    grants: {net: [gpsd]}\n", `plugins[0].grants.net[0]: invalid destination "gpsd" (expected host:port`},
		{"  - path: testdata/plugins/gnss\n    transport: process\n    unconfined_ok: [everything]\n", `plugins[0].unconfined_ok[0]: unknown confinement feature "everything" (expected one of landlock, landlock-net, signals, seccomp, pidns)`},
		{"  - path: testdata/plugins/weather.wasm\n    grants: {net: [\"127.0.0.1:1\"]}\n", `plugins[0].grants: files and net grants confine process plugins`},
	} {
		_, err := config.Parse("fleet.yaml", []byte("name: a\nplugins:\n"+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse = %v; want %q", err, tc.want)
		}
	}
}

// TestConfigDirVar: ${config_dir} in a plugin's config value is the config
// file's directory, so a replay log beside the config can be named.
func TestConfigDirVar(t *testing.T) {
	f, err := config.Parse("fleet.yaml", []byte(`name: a
plugins:
  - path: testdata/plugins/gnss
    transport: process
    config: {source: "file://${config_dir}/track.nmea?loop=true", other: plain}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Agents[0].Plugins[0].Config
	if c["source"] != "file://"+abs(t, "track.nmea")+"?loop=true" || c["other"] != "plain" {
		t.Fatalf("config = %v", c)
	}
}
