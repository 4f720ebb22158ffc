// Package ws is the W3bstream device message format the w3bstream plugin
// speaks, after IoTeX W3bstream's (Sprout) API node: a device POSTs
//
//	/message  {"projectID":1,"projectVersion":"0.1","data":"…","signature":"0x…"}
//
// and is answered {"messageID":"…"}; GET /message/{id} answers the message's
// proof states, {"messageID":"…","states":[{"state":"received","time":…,
// "comment":"…"}, …]}, up to "proved" (the comment then holds the hash of
// the transaction that wrote the proof) or "failed".
//
// The signature covers the message's JSON without it — projectID,
// projectVersion, data, in that order — as the API node recomputes it. One
// difference: W3bstream's node recovers a secp256k1 signer from a
// Keccak-256 signature, while a depai agent signs with its Ed25519 identity
// key, which cannot be recovered from a signature; so the message also
// carries the signer's did:key (deviceDID) and the plugin name the core
// signed for (see wire.SignedBytes). A node that accepts Ed25519 devices
// checks wire.SignedBytes(plugin, Canonical()) against deviceDID.
package ws

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Message is one device message.
type Message struct {
	ProjectID      uint64 `json:"projectID"`
	ProjectVersion string `json:"projectVersion"`
	Data           string `json:"data"`
	Signature      string `json:"signature,omitempty"` // 0x-prefixed hex
	DeviceDID      string `json:"deviceDID,omitempty"`
	Plugin         string `json:"plugin,omitempty"`
}

// Canonical is what is signed: the message's JSON without its signature
// and signer fields.
func (m Message) Canonical() []byte {
	b, _ := json.Marshal(struct {
		ProjectID      uint64 `json:"projectID"`
		ProjectVersion string `json:"projectVersion"`
		Data           string `json:"data"`
	}{m.ProjectID, m.ProjectVersion, m.Data})
	return b
}

// SignatureBytes decodes Signature.
func (m Message) SignatureBytes() ([]byte, error) {
	s, ok := strings.CutPrefix(m.Signature, "0x")
	if !ok {
		return nil, fmt.Errorf("signature %q: want 0x-prefixed hex", m.Signature)
	}
	return hex.DecodeString(s)
}

// EncodeSignature is sig as Signature holds it.
func EncodeSignature(sig []byte) string { return "0x" + hex.EncodeToString(sig) }

// State is one step of a message's proof.
type State struct {
	State   string    `json:"state"`
	Time    time.Time `json:"time"`
	Comment string    `json:"comment,omitempty"`
}

// Proof states that end a message's life.
const (
	StateProved = "proved"
	StateFailed = "failed"
)

// Status is the answer of GET /message/{id}.
type Status struct {
	MessageID string  `json:"messageID"`
	States    []State `json:"states"`
}

// Latest is the newest state, or "" when there is none.
func (s Status) Latest() State {
	if len(s.States) == 0 {
		return State{}
	}
	return s.States[len(s.States)-1]
}

// MaxAnswer bounds an answer the parsers read.
const MaxAnswer = 1 << 20

// ParseSubmit reads the answer to POST /message: the message ID, or the
// node's error.
func ParseSubmit(status int, body []byte) (string, error) {
	if len(body) > MaxAnswer {
		return "", fmt.Errorf("answer of %d bytes; the limit is %d", len(body), MaxAnswer)
	}
	var a struct {
		MessageID string `json:"messageID"`
		Error     string `json:"error"`
	}
	jerr := json.Unmarshal(body, &a)
	switch {
	case status != 200 && jerr == nil && a.Error != "":
		return "", fmt.Errorf("HTTP %d: %s", status, a.Error)
	case status != 200:
		return "", fmt.Errorf("HTTP %d: %s", status, snippet(body))
	case jerr != nil:
		return "", fmt.Errorf("answer is not JSON: %v: %s", jerr, snippet(body))
	case a.MessageID == "":
		return "", errors.New("answer has no messageID")
	}
	return a.MessageID, nil
}

// ParseStatus reads the answer to GET /message/{id}.
func ParseStatus(status int, body []byte) (Status, error) {
	if len(body) > MaxAnswer {
		return Status{}, fmt.Errorf("answer of %d bytes; the limit is %d", len(body), MaxAnswer)
	}
	if status != 200 {
		return Status{}, fmt.Errorf("HTTP %d: %s", status, snippet(body))
	}
	var s Status
	if err := json.Unmarshal(body, &s); err != nil {
		return Status{}, fmt.Errorf("answer is not a message status: %v: %s", err, snippet(body))
	}
	for i, st := range s.States {
		if st.State == "" {
			return Status{}, fmt.Errorf("states[%d] has no state", i)
		}
	}
	return s, nil
}

func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return fmt.Sprintf("%q…", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
