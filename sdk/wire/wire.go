// Package wire is the contract between the depai host and a plugin: the
// manifest a plugin describes itself with, the call envelope and error shape
// used on both transports (WASM and gRPC process plugins), and the names of
// the host methods a plugin may call through host_call.
//
// Everything here is plain JSON-serialisable data so that both transports and
// every language can speak it.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ABIVersion is the major version of this contract. A host refuses a plugin
// whose major ABI differs from its own.
const ABIVersion = 1

// ManifestSection is the WASM custom section in which a module built by
// `depai plugin build --wasm` carries its Manifest as JSON. A host reads it
// instead of calling the module's describe export; a module without it is
// asked.
const ManifestSection = "depai.manifest"

// Manifest is what a plugin says about itself.
type Manifest struct {
	Name     string       `json:"name"`
	Version  string       `json:"version"`
	ABI      int          `json:"abi"`
	Tools    []ToolDef    `json:"tools,omitempty"`
	Sensors  []SensorDef  `json:"sensors,omitempty"`
	Requests Capabilities `json:"requests"` // capabilities the plugin needs; the agent config grants them
	// Run says the plugin registered a run hook (sdk.Run): the host calls
	// MethodRun once after loading, with no deadline, and ends it on unload.
	Run bool `json:"run,omitempty"`
	// Actuation declares the plugin's stop handler and watchdog (see actuation.go).
	Actuation ActuationDef `json:"actuation,omitzero"`
	// Errors are registration mistakes found while the plugin initialised
	// (a tool whose types have no JSON Schema, a duplicate name). A host
	// refuses a manifest that lists any.
	Errors []string `json:"errors,omitempty"`
}

// ToolDef describes a tool a plugin offers. Input and Output are JSON Schemas.
type ToolDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Input       json.RawMessage `json:"input"`
	Output      json.RawMessage `json:"output,omitempty"`
	Effect      Effect          `json:"effect,omitempty"`
}

// Effect says what kind of side effect a tool has. A plugin declares it, but
// the agent's safety config is authoritative: a tool a safety rule names is
// gated as that rule says, whatever its manifest claims.
type Effect string

// Effects.
const (
	EffectNone     Effect = ""         // reads or computes only
	EffectWrite    Effect = "write"    // changes memory or remote state
	EffectActuator Effect = "actuator" // moves something in the physical world
	EffectPayment  Effect = "payment"  // moves money
)

// Valid reports whether e is one of the effects above.
func (e Effect) Valid() bool {
	switch e {
	case EffectNone, EffectWrite, EffectActuator, EffectPayment:
		return true
	}
	return false
}

// Gated reports whether calls with this effect pass the safety policy and
// are locked by the emergency stop.
func (e Effect) Gated() bool { return e == EffectActuator || e == EffectPayment }

// Transport kinds: how a plugin runs.
const (
	TransportWASM    = "wasm"    // sandboxed in wazero; the default
	TransportProcess = "process" // a native executable under go-plugin; trusted native code
)

// KindOf tells a plugin's transport from the first bytes of its file:
// TransportWASM, TransportProcess (ELF, Mach-O, PE, or a #! script), or ""
// when it is neither.
func KindOf(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\x00asm")):
		return TransportWASM
	case bytes.HasPrefix(head, []byte("\x7fELF")),
		bytes.HasPrefix(head, []byte{0xcf, 0xfa, 0xed, 0xfe}), // Mach-O 64
		bytes.HasPrefix(head, []byte{0xce, 0xfa, 0xed, 0xfe}), // Mach-O 32
		bytes.HasPrefix(head, []byte{0xca, 0xfe, 0xba, 0xbe}), // Mach-O universal
		bytes.HasPrefix(head, []byte("MZ")),
		bytes.HasPrefix(head, []byte("#!")):
		return TransportProcess
	}
	return ""
}

// SensorDef describes a sensor or feed: the host polls it every Interval (a
// Go duration string) when Interval is set; a plugin may also push readings
// with the emit host method.
type SensorDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Output      json.RawMessage `json:"output,omitempty"`
	Interval    string          `json:"interval,omitempty"`
}

// Capabilities is what a plugin requests and what an agent grants (the
// `grants:` of a plugin in the agent config, hence the YAML tags). Deny by
// default: a zero Capabilities grants nothing.
type Capabilities struct {
	MemoryRead  []string `json:"memory_read,omitempty" yaml:"memory_read"`   // namespaces (and everything below them)
	MemoryWrite []string `json:"memory_write,omitempty" yaml:"memory_write"` // namespaces (and everything below them)
	HTTP        []string `json:"http,omitempty" yaml:"http"`                 // host[:port] allowed for http.fetch
	Emit        []string `json:"emit,omitempty" yaml:"emit"`                 // topics
	Secrets     []string `json:"secrets,omitempty" yaml:"secrets"`           // secret names
	Config      []string `json:"config,omitempty" yaml:"config"`             // config keys
	Clock       bool     `json:"clock,omitempty" yaml:"clock"`               // real wall clock (otherwise a fixed epoch)
	// Random is accepted for compatibility and changes nothing: every
	// plugin's randomness is the host's CSPRNG (see README, "Plugins").
	Random   bool `json:"random,omitempty" yaml:"random"`
	Actuator bool `json:"actuator,omitempty" yaml:"actuator"` // may offer actuator tools
	Payment  bool `json:"payment,omitempty" yaml:"payment"`   // may use pay.quote/pay.execute
	// Sign lets the plugin have bytes signed with the agent's identity key
	// (HostSign); the key stays in the core.
	Sign bool `json:"sign,omitempty" yaml:"sign"`
	// Files are paths a process plugin may open, enforced by the kernel
	// (Landlock). A directory covers everything below it.
	Files []FileGrant `json:"files,omitempty" yaml:"files"`
	// Net are "host:port" TCP destinations a process plugin may connect to.
	// The kernel (Landlock) enforces the ports; it cannot tell hosts apart,
	// so a granted port is reachable on every host.
	Net []string `json:"net,omitempty" yaml:"net"`
	// Listen are TCP ports a process plugin may listen on (a simulator
	// serving NMEA, say); 0 allows an ephemeral port. Landlock enforces them.
	Listen []uint16 `json:"listen,omitempty" yaml:"listen"`
}

// Confinement features of process plugins: what the kernel enforces on one,
// by the names a plugin's unconfined_ok config uses to let it run without
// a feature the kernel lacks.
const (
	ConfineLandlock    = "landlock"     // file access limited to the granted paths
	ConfineLandlockNet = "landlock-net" // TCP connect limited to the granted ports
	ConfineSignals     = "signals"      // no signals to processes outside the plugin's domain
	ConfineSeccomp     = "seccomp"      // no ptrace, raw or UDP sockets, mounts, keyrings, kernel modules
	ConfinePIDNS       = "pidns"        // its own PID namespace: it sees no other process, and its children die with it
)

// ConfineFeatures lists every confinement feature.
var ConfineFeatures = []string{ConfineLandlock, ConfineLandlockNet, ConfineSignals, ConfineSeccomp, ConfinePIDNS}

// FileGrant is one path a process plugin may open.
type FileGrant struct {
	Path string `json:"path" yaml:"path"`
	Mode string `json:"mode" yaml:"mode"` // FileRO or FileRW
}

// File grant modes.
const (
	FileRO = "ro"
	FileRW = "rw"
)

// Call is one request from host to plugin. Method is a tool or sensor name,
// or one of the reserved methods below.
type Call struct {
	Method   string          `json:"method"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	CallID   string          `json:"call_id"`
	Deadline int64           `json:"deadline,omitempty"` // Unix nanoseconds; 0: none
	// Checked says the host already validated Payload against the method's
	// input schema, so the plugin may skip validating it again.
	Checked bool `json:"checked,omitempty"`
}

// Reserved plugin methods.
const (
	MethodDescribe = "$describe" // returns the Manifest
	// MethodRun runs the plugin's run hooks (sdk.Run) until they return or
	// the call is canceled. The host calls it once per loaded plugin, with no
	// deadline, and cancels it when the plugin is unloaded.
	MethodRun = "$run"
)

// Result answers a Call: a payload, or an error.
type Result struct {
	Payload json.RawMessage `json:"payload,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Error is the one error shape of depai tools and plugins.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an Error with a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes.
const (
	CodeInvalidArgument = "invalid_argument"
	CodeNotFound        = "not_found"
	CodeDenied          = "denied"
	CodeForbidden       = "forbidden" // the caller's role does not allow it
	CodeTimeout         = "timeout"
	CodeUnavailable     = "unavailable"
	CodeTooLarge        = "too_large"
	CodeCrashed         = "crashed"      // the plugin trapped, panicked or died during the call
	CodeRateLimited     = "rate_limited" // the plugin asked the host for more than its rate allows; retryable
	CodeInternal        = "internal"
)

// Host methods a plugin reaches through host_call. Their payloads are JSON.
const (
	HostLog         = "log"
	HostMemoryGet   = "memory.get"
	HostMemoryPut   = "memory.put"
	HostMemoryQuery = "memory.query"
	HostHTTPFetch   = "http.fetch"
	HostEmit        = "emit"
	HostConfig      = "config"
	HostSecret      = "secret"
	HostClock       = "clock"
	HostPayQuote    = "pay.quote"
	HostPayExecute  = "pay.execute"
)
