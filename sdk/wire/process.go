package wire

// Process plugins speak hashicorp/go-plugin over gRPC. There is no .proto:
// every message is a google.protobuf.BytesValue carrying the JSON of the
// types in this package, so the envelope is byte-for-byte the one the WASM
// transport uses and no code generator is needed on either side.
//
//	host → plugin  ProcessInit   BytesValue(ProcessInit) → BytesValue(Manifest)
//	host → plugin  ProcessCall   BytesValue(Call)        → BytesValue(Result)
//	plugin → host  ProcessHost   BytesValue(Call)        → BytesValue(Result)
//
// ProcessHost is served by the host through go-plugin's GRPCBroker; its
// Call.Method is one of the Host* methods above.
const (
	// ProcessCookieKey and ProcessCookieValue are go-plugin's handshake: a
	// plugin started without them was run by hand, not by a host.
	ProcessCookieKey   = "DEPAI_PLUGIN"
	ProcessCookieValue = "0d9f3c1e-depai-process-plugin"
	// ProcessPluginSet is the name the plugin is dispensed under.
	ProcessPluginSet = "depai"

	ProcessService     = "depai.plugin.v1.Plugin"
	ProcessHostService = "depai.plugin.v1.Host"
	ProcessInit        = "/" + ProcessService + "/Init"
	ProcessCall        = "/" + ProcessService + "/Call"
	ProcessHost        = "/" + ProcessHostService + "/Call"
)

// ProcessStart is the payload of ProcessInit: what the host tells a freshly
// started process plugin.
type ProcessStart struct {
	Plugin          string `json:"plugin"`            // the name the agent config gives the plugin
	HostBroker      uint32 `json:"host_broker"`       // GRPCBroker id the host serves ProcessHost on
	MaxMessageBytes int    `json:"max_message_bytes"` // payload limit either way
	// HangGraceMillis is how long a handler may keep running after its
	// call's deadline or cancellation; the plugin exits when one overstays,
	// so the host restarts a clean process instead of keeping a spinning one.
	HangGraceMillis int64 `json:"hang_grace_ms"`
}
