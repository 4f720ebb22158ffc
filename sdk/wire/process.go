package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Process plugins are started and handshaken by hashicorp/go-plugin, which
// gives each side a gRPC connection to the other. There is no .proto: every
// gRPC message is a google.protobuf.BytesValue carrying the JSON of the types
// in this package, so the envelope is byte-for-byte the one the WASM
// transport uses and no code generator is needed on either side.
//
//	host → plugin  ProcessInit  BytesValue(ProcessStart) → BytesValue(ProcessReady)
//	plugin → host  ProcessHost  BytesValue(Call)         → BytesValue(Result)
//
// ProcessHost is served by the host through go-plugin's GRPCBroker; its
// Call.Method is one of the Host* methods above.
//
// Calls from host to plugin take a faster road than a gRPC unary call (whose
// HTTP/2 streams, headers and trailers cost four to five times a pipe round
// trip): after Init the host connects to ProcessReady.CallAddr, a Unix
// socket, and exchanges frames there (see AppendFrame). Each connection
// carries one call at a time, which the plugin runs on the goroutine that
// read it — no hand-off to another goroutine, so no second thread woken per
// call; concurrent calls take more connections. Every connection opens
// with a FrameHello carrying ProcessReady.CallToken; a FrameCancel may come
// on any connection and names the call by its id, unique across them.
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

// ProcessReady answers ProcessInit.
type ProcessReady struct {
	Manifest Manifest `json:"manifest"`
	CallAddr string   `json:"call_addr"` // Unix socket path for call frames
	// CallToken opens every connection to CallAddr (FrameHello): only the
	// host, which learns it here, can call the plugin.
	CallToken string `json:"call_token"`
}

// Frame kinds on the call socket.
const (
	FrameCall   byte = 1 // host → plugin: JSON Call
	FrameResult byte = 2 // plugin → host: JSON Result for the call of the same id
	FrameCancel byte = 3 // host → plugin: the call of this id was abandoned; no body
	FrameHello  byte = 4 // host → plugin: first frame of a connection; body ProcessReady.CallToken, id 0
)

// FrameHeaderLen is a frame header's length: u32 big-endian length of what
// follows it, kind, u64 id.
const FrameHeaderLen = 4 + 1 + 8

// ErrFrameTooLarge is returned by ReadFrame for a frame over its limit; the
// frame has been skipped and the stream is still in sync.
var ErrFrameTooLarge = errors.New("frame too large")

// AppendFrame appends one frame to b.
func AppendFrame(b []byte, kind byte, id uint64, body []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+8+len(body)))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	return append(b, body...)
}

// ParseFrameHeader decodes the FrameHeaderLen bytes at the start of h and
// returns the length n of the body that follows. A body over max is
// reported as ErrFrameTooLarge with its kind, id and n, for the caller to
// skip its n bytes.
func ParseFrameHeader(h []byte, max int) (kind byte, id uint64, n int64, err error) {
	size := int64(binary.BigEndian.Uint32(h[:4])) - 9
	kind, id = h[4], binary.BigEndian.Uint64(h[5:FrameHeaderLen])
	switch {
	case size < 0:
		return 0, 0, 0, fmt.Errorf("malformed frame: length %d", size+9)
	case size > int64(max):
		return kind, id, size, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, max)
	}
	return kind, id, size, nil
}

// ReadFrame reads one frame whose body is at most max bytes. A larger frame
// is skipped and reported as ErrFrameTooLarge with its kind and id, so the
// caller can fail just that call.
func ReadFrame(r io.Reader, max int) (kind byte, id uint64, body []byte, err error) {
	var h [FrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	kind, id, n, err := ParseFrameHeader(h[:], max)
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		if _, cerr := io.CopyN(io.Discard, r, n); cerr != nil {
			return 0, 0, nil, cerr
		}
		return kind, id, nil, err
	case err != nil:
		return 0, 0, nil, err
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, 0, nil, err
	}
	return kind, id, body, nil
}

// The bodies of FrameCall and FrameResult are binary, not JSON: encoding
// the envelope as JSON validated and copied the payload once per side and
// direction, which cost more CPU than the round trip itself. The payload is
// raw JSON at the end of the body; lengths are big-endian.
//
//	call:   u64 deadline (Unix ns, 0: none) | u8 flags (1: checked) |
//	        u16 len | method | u16 len | call_id | payload
//	result: u8 0 | payload
//	        u8 1 | u8 retryable | u16 len | code | message

// AppendCallBody appends c as a FrameCall body. Method and CallID longer
// than 65535 bytes are cut there.
func AppendCallBody(b []byte, c Call) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(c.Deadline))
	var flags byte
	if c.Checked {
		flags |= 1
	}
	b = append(b, flags)
	b = appendShort(b, c.Method)
	b = appendShort(b, c.CallID)
	return append(b, c.Payload...)
}

// ParseCallBody reads a FrameCall body. The payload aliases b.
func ParseCallBody(b []byte) (Call, error) {
	if len(b) < 9 {
		return Call{}, fmt.Errorf("call body of %d bytes, shorter than its header", len(b))
	}
	c := Call{Deadline: int64(binary.BigEndian.Uint64(b)), Checked: b[8]&1 != 0}
	rest := b[9:]
	var ok bool
	if c.Method, rest, ok = readShort(rest); !ok {
		return Call{}, errors.New("call body: method cut short")
	}
	if c.CallID, rest, ok = readShort(rest); !ok {
		return Call{}, errors.New("call body: call_id cut short")
	}
	if len(rest) > 0 {
		c.Payload = rest
	}
	return c, nil
}

// AppendResultBody appends r as a FrameResult body. An error's code is cut
// at 65535 bytes.
func AppendResultBody(b []byte, r Result) []byte {
	if r.Error == nil {
		return append(append(b, 0), r.Payload...)
	}
	var retry byte
	if r.Error.Retryable {
		retry = 1
	}
	b = append(b, 1, retry)
	b = appendShort(b, r.Error.Code)
	return append(b, r.Error.Message...)
}

// ParseResultBody reads a FrameResult body. The payload aliases b; it is
// not checked to be JSON.
func ParseResultBody(b []byte) (Result, error) {
	if len(b) == 0 {
		return Result{}, errors.New("empty result body")
	}
	switch b[0] {
	case 0:
		if len(b) == 1 {
			return Result{}, nil
		}
		return Result{Payload: b[1:]}, nil
	case 1:
		if len(b) < 2 {
			return Result{}, errors.New("error result cut short")
		}
		code, rest, ok := readShort(b[2:])
		if !ok {
			return Result{}, errors.New("error result: code cut short")
		}
		return Result{Error: &Error{Code: code, Message: string(rest), Retryable: b[1] == 1}}, nil
	}
	return Result{}, fmt.Errorf("result body of unknown kind %d", b[0])
}

func appendShort(b []byte, s string) []byte {
	s = s[:min(len(s), 0xffff)]
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func readShort(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}
