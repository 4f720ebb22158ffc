// Package config reads depai agent configuration: one agent per YAML file, or
// a fleet file listing several agents.
//
// Decoding is strict. An unknown key, a value of the wrong type, a bad value
// (a malformed duration, a negative limit, an unknown role, a duplicate name,
// a plugin file that does not exist) or a missing file is an error that names
// the file, the line and the key:
//
//	fleet.yaml:12: agents[0].modle: unknown key (did you mean "model"?)
//
// Every error in a file is reported at once, not just the first. Defaults are
// applied in one place (see [Agent] field docs) after decoding, and relative
// paths are resolved against the config file's directory.
package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/depai/depai/sdk/wire"
)

// File is a decoded config file: one agent or a fleet.
type File struct {
	Path     string   // the path the file was read from, as given
	Operator Operator // fleet-wide operator API settings
	DataDir  string   // data_dir: where memory and the token live; a hint that --data overrides
	Mesh     Mesh     // mesh: how this process joins the fleet on NATS (mesh.go)
	Agents   []Agent  // at least one
}

// Operator configures the operator API of `depai run`.
type Operator struct {
	// Addr is where the API listens. Empty: the CLI picks —
	// DefaultOperatorAddr for `depai run`, a free port for `depai run
	// --chat` (so that two people running the README's command do not
	// clash).
	Addr      string `yaml:"addr"`
	TokenFile string `yaml:"token_file"` // relative to the config file; empty: the caller picks one in the data dir
	// Operators are named operators with their own tokens and roles,
	// besides the generated token (TokenFile), which is the admin named
	// "operator".
	Operators []OperatorToken `yaml:"operators"`
}

// Operator roles, as agent/policy orders them: each includes the ones
// before it.
const (
	RoleViewer   = "viewer"   // reads status, tools, memory and the audit log; may engage the e-stop
	RoleOperator = "operator" // also talks to agents, calls tools, approves, takes teleop
	RoleAdmin    = "admin"    // also releases the e-stop and manages plugins
)

// GeneratedOperator is the name of the generated token's operator.
const GeneratedOperator = "operator"

// OperatorToken is one named operator of the API. Its token is read from a
// file (mode 0600, like the generated one) or an environment variable:
// exactly one of TokenFile and TokenEnv.
type OperatorToken struct {
	Name      string `yaml:"name" check:"required"`
	Role      string `yaml:"role" check:"required,oneof=viewer|operator|admin"`
	TokenFile string `yaml:"token_file"` // relative to the config file; absolute after Load
	TokenEnv  string `yaml:"token_env"`  // the environment variable holding the token
}

// Roles of an agent.
const (
	RoleRobot   = "robot"
	RoleDigital = "digital"
)

// Agent is one agent's configuration.
type Agent struct {
	Name    string `yaml:"name" check:"required"`
	Role    string `yaml:"role" check:"oneof=robot|digital"` // default "digital"
	Persona string `yaml:"persona"`                          // the system prompt

	Model Model `yaml:"model"`
	// Tools are the built-in tools to enable: all when the key is absent
	// (nil), none for `tools: []`.
	Tools   []string `yaml:"tools"`
	Plugins []Plugin `yaml:"plugins"`
	// MCP are Model Context Protocol servers whose tools become the
	// agent's, under the same policy and audit as any tool.
	MCP    []MCPServer `yaml:"mcp"`
	Memory Memory      `yaml:"memory"`
	Limits Limits      `yaml:"limits"`
	Safety Safety      `yaml:"safety"`

	Schedule  []Schedule `yaml:"schedule"`
	Wake      []Wake     `yaml:"wake"`      // memory records that start a turn
	Operators []string   `yaml:"operators"` // operator ids allowed to command it; empty: any holder of the token
	// Wallet is the agent's EVM wallet (see Wallet); nil: the agent has none
	// and every payment is refused.
	Wallet *Wallet `yaml:"wallet"`
}

// Model is an OpenAI-compatible endpoint. An empty BaseURL means no model is
// configured: the agent runs on commands, schedules and events.
type Model struct {
	BaseURL     string   `yaml:"base_url"`
	Model       string   `yaml:"model"`
	APIKeyEnv   string   `yaml:"api_key_env"` // the environment variable holding the API key
	MaxTokens   int      `yaml:"max_tokens" check:"nonneg"`
	Temperature *float32 `yaml:"temperature" check:"range=0..2"`
	Timeout     Duration `yaml:"timeout" check:"nonneg"` // per model call, retries included; default 60s
	// FirstByteTimeout bounds the wait for a streamed reply to start; a
	// hung endpoint is reported after it. Default 15s.
	FirstByteTimeout Duration `yaml:"first_byte_timeout" check:"nonneg"`
	// Stream is whether replies are streamed (default true). false sends
	// every request with stream: false, for servers that do not stream
	// tool calls; see Streaming.
	Stream *bool `yaml:"stream"`
}

// Streaming reports whether requests to the model are streamed: unless
// stream: false is configured.
func (m Model) Streaming() bool { return m.Stream == nil || *m.Stream }

// Plugin transports.
const (
	TransportWASM    = wire.TransportWASM
	TransportProcess = wire.TransportProcess
)

// Plugin is one plugin an agent loads.
type Plugin struct {
	Name string `yaml:"name"` // default: the file name without extension
	// Path is a .wasm module, a native plugin executable, or a Go package
	// directory the host builds; relative to the config file. After Load it
	// is absolute.
	Path string `yaml:"path" check:"required"`
	// Transport is "wasm" or "process". Empty means "wasm" for a WASM file
	// or a package directory (built to WASM, the sandboxed default); a
	// native executable is refused unless "process" is written here, so
	// native code never runs because of what a file looks like.
	Transport string            `yaml:"transport" check:"oneof=wasm|process"`
	SHA256    string            `yaml:"sha256"` // optional pin of the file's hash, lower-case hex after Load
	Grants    Grants            `yaml:"grants"`
	Config    map[string]string `yaml:"config"`  // values the plugin reads with the config capability; ConfigDirVar in one is the config file's directory
	Secrets   map[string]string `yaml:"secrets"` // secret name → environment variable holding it
	Limits    PluginLimits      `yaml:"limits"`
	// UnconfinedOK lets a process plugin run where the kernel lacks these
	// confinement features (wire.Confine*: landlock, landlock-net, signals,
	// seccomp, pidns); without it such a plugin does not load.
	UnconfinedOK []string `yaml:"unconfined_ok"`
}

// ConfigDirVar, in a plugin's config value, stands for the directory of the
// config file, so a value can name a file beside it (a replay log, a CA).
const ConfigDirVar = "${config_dir}"

// Grants are the capabilities an agent gives a plugin: the wire contract's
// own type. Deny by default.
type Grants = wire.Capabilities

// MCPServer is an MCP server an agent uses: a command speaking MCP on its
// stdin and stdout, or a Streamable HTTP URL.
type MCPServer struct {
	Name    string   `yaml:"name" check:"required"`
	Command []string `yaml:"command"` // the first element is the program; relative paths are against the config file
	URL     string   `yaml:"url"`
	// Env is the server process's whole environment: NAME → the
	// environment variable of depai's that holds the value.
	Env     map[string]string `yaml:"env"`
	Timeout Duration          `yaml:"timeout" check:"nonneg"` // connecting and each call; default 30s
}

// PluginLimits bound one plugin. Zero fields take the host's defaults.
type PluginLimits struct {
	Memory      ByteSize `yaml:"memory" check:"nonneg"`
	CallTimeout Duration `yaml:"call_timeout" check:"nonneg"`
	Concurrency int      `yaml:"concurrency" check:"nonneg"`
	MaxMessage  ByteSize `yaml:"max_message" check:"nonneg"`
}

// Memory profiles.
const (
	ProfileDefault = "default"
	ProfileLowMem  = "lowmem"
)

// Memory is what an agent may read and write in shared memory.
type Memory struct {
	Read    []string `yaml:"read"`                                 // namespaces; default ["agent/<name>", "shared"]
	Write   []string `yaml:"write"`                                // namespaces; default ["agent/<name>", "shared"]
	Profile string   `yaml:"profile" check:"oneof=default|lowmem"` // default "default"
	// MinFree is the free disk space below which the store refuses writes
	// (memory.Config.MinFreeBytes); 0: the profile's default (544MiB,
	// lowmem 48MiB). The fleet shares one store, so agents that set it must
	// agree.
	MinFree ByteSize `yaml:"min_free" check:"nonneg"`
	// Embeddings is the endpoint that embeds memories for vector recall.
	// The fleet shares one recall index, so agents that set it must agree.
	// Unset: recall is BM25 alone.
	Embeddings Embeddings `yaml:"embeddings"`
}

// Embeddings is an OpenAI-compatible /v1/embeddings endpoint.
type Embeddings struct {
	BaseURL   string `yaml:"base_url"`
	Model     string `yaml:"model"`
	APIKeyEnv string `yaml:"api_key_env"`
	Dims      int    `yaml:"dims" check:"nonneg"` // 0: whatever the model returns
}

// Limits bound one turn. A key that is present must be positive.
type Limits struct {
	ModelCalls int      `yaml:"model_calls" check:"positive"` // default 8
	ToolCalls  int      `yaml:"tool_calls" check:"positive"`  // default 16
	WallTime   Duration `yaml:"wall_time" check:"positive"`   // default 2m
	Tokens     int      `yaml:"tokens" check:"positive"`      // default 32000
	// Depth ends chains of wakes, emits and agent messages: an input more
	// than Depth hops from its cause is refused (and audited).
	Depth int `yaml:"depth" check:"positive"` // default 4
	// Inbox is how many inputs (messages, wakes, events, ticks) may wait
	// for the agent; past it, new ones are refused as busy.
	Inbox int `yaml:"inbox" check:"positive"` // default 64
	// Concurrency is how many turns the agent runs at once.
	Concurrency int `yaml:"concurrency" check:"positive"` // default 2
}

// Safety is the deterministic policy between the model and side effects.
type Safety struct {
	// Actuators are authoritative: a tool named here is gated and locked by
	// the e-stop whatever its plugin declares, and a plugin whose tool is
	// named here but not declared an actuator does not load.
	Actuators []ActuatorRule `yaml:"actuators"`
	// Spend limits what the agent may pay (see Spend); without it every
	// payment is refused.
	Spend Spend `yaml:"spend"`
	// ApprovalTimeout is how long an action waits for /approve before it
	// is denied. Default 5m.
	ApprovalTimeout Duration `yaml:"approval_timeout" check:"positive"`
	// Motion are the rules that decide a move on where the robot is.
	Motion Motion `yaml:"motion"`
	// AgentCalls restrict the tools other fleet agents may call here
	// (depai.call tasks, such as a dispatcher's inspect reflex). Absent:
	// any tool, each through this agent's rules; present: only those a
	// matching entry lists.
	AgentCalls []AgentCall `yaml:"agent_calls"`
}

// AgentCall lets one agent (or "*": any verified fleet agent) call the
// listed tools; a name may end in "*" for a prefix, such as "robot.*".
type AgentCall struct {
	From  string   `yaml:"from" check:"required"`
	Tools []string `yaml:"tools"`
}

// Allows reports whether tool matches one of the entry's tools.
func (c AgentCall) Allows(tool string) bool {
	for _, t := range c.Tools {
		if t == tool || strings.HasSuffix(t, "*") && strings.HasPrefix(tool, strings.TrimSuffix(t, "*")) {
			return true
		}
	}
	return false
}

// Motion rules need the robot's pose (its latest reading with lat/lon).
// With any of them set, every actuator call is decided on a fresh pose and
// refused without one.
type Motion struct {
	MaxPoseAge     Duration    `yaml:"max_pose_age" check:"nonneg"`                               // older pose: no motion; default 10s
	MinFix         string      `yaml:"min_fix" check:"oneof=none|2d|3d|dgps|rtk_float|rtk_fixed"` // worse fix: no motion
	BatteryReserve float64     `yaml:"battery_reserve" check:"range=0..100"`                      // percent; below it: no motion
	Geofence       [][]float64 `yaml:"geofence"`                                                  // [[lat, lon], …]: the area the robot must stay in
}

// DefaultMaxPoseAge is how old a pose may be before it is stale.
const DefaultMaxPoseAge = Duration(10 * time.Second)

// ActuatorRule gates calls of one actuator tool.
type ActuatorRule struct {
	Tool     string  `yaml:"tool" check:"required"`
	MaxRate  string  `yaml:"max_rate"`                 // "N/s", "N/min" or "N/h"; see Rate
	MaxSpeed float64 `yaml:"max_speed" check:"nonneg"` // m/s; 0: no limit
	KeepOut  []Zone  `yaml:"keep_out"`
	Approve  bool    `yaml:"approve"` // every call waits for an operator's /approve
}

// Zone is an area the robot must not enter or cross: a circle (lat, lon,
// radius_m) or a polygon ([[lat, lon], …]).
type Zone struct {
	Name    string      `yaml:"name" json:"name"`
	Lat     float64     `yaml:"lat" json:"lat,omitempty" check:"range=-90..90"`
	Lon     float64     `yaml:"lon" json:"lon,omitempty" check:"range=-180..180"`
	RadiusM float64     `yaml:"radius_m" json:"radius_m,omitempty" check:"positive"`
	Polygon [][]float64 `yaml:"polygon" json:"polygon,omitempty"`
}

// Wake subscribes an agent to shared memory: each new record in Namespace
// (or below it) of one of Kinds (any, if empty) carrying all Tags starts a
// turn — how a robot's observation wakes a digital agent. The agent's own
// records never wake it.
type Wake struct {
	Namespace string   `yaml:"namespace" check:"required"` // within memory.read
	Kinds     []string `yaml:"kinds"`
	Tags      []string `yaml:"tags"`
	// Above and Inspect make the wake a reflex that needs no model: a
	// record whose data field is above the value sends the nearest robot to
	// look (see mesh.go).
	Above   *Threshold `yaml:"above"`
	Inspect *Inspect   `yaml:"inspect"`
}

// Schedule feeds an input to the agent periodically.
type Schedule struct {
	Every Duration `yaml:"every" check:"required,positive"`
	Input string   `yaml:"input" check:"required"`
}

// Load reads and validates the config file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates config data. name is used in error messages and
// to resolve relative paths, exactly as Load uses the file's path.
func Parse(name string, data []byte) (*File, error) {
	d := newDecoder(name)
	f := d.file(data)
	if err := d.err(); err != nil {
		return nil, err
	}
	return f, nil
}
