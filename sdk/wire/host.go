package wire

import (
	"encoding/json"
	"time"
)

// Payloads of the host methods (wire.Host*). The SDK encodes them on the
// plugin side and the host's dispatcher decodes them, on both transports.

// LogArgs is the payload of HostLog. Level is one of debug, info, warn, error.
type LogArgs struct {
	Level string         `json:"level"`
	Msg   string         `json:"msg"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// MemoryRecord is a memory record as a plugin sees it. It mirrors
// memory.Record without importing it, so plugins do not link the store.
// Author is always set by the host to the plugin's name.
type MemoryRecord struct {
	ID        string          `json:"id,omitempty"`
	Seq       uint64          `json:"seq,omitempty"`
	Namespace string          `json:"namespace"`
	Kind      string          `json:"kind"`
	Author    string          `json:"author,omitempty"`
	Time      time.Time       `json:"time,omitzero"`
	Recorded  time.Time       `json:"recorded,omitzero"`
	Text      string          `json:"text,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Tags      []string        `json:"tags,omitempty"`
	Key       string          `json:"key,omitempty"`
	ExpiresAt time.Time       `json:"expires_at,omitzero"`
}

// MemoryPutArgs is the payload of HostMemoryPut; the result is a
// MemoryRecords with the records as stored.
type MemoryPutArgs struct {
	Records []MemoryRecord `json:"records"`
}

// MemoryGetArgs is the payload of HostMemoryGet; the result is a MemoryRecord.
type MemoryGetArgs struct {
	ID string `json:"id"`
}

// MemoryQuery is the payload of HostMemoryQuery; the result is a
// MemoryRecords. Namespace is required and must be granted for reading.
// Limit 0 or above the host's cap takes the cap.
type MemoryQuery struct {
	Namespace string    `json:"namespace"`
	Kinds     []string  `json:"kinds,omitempty"`
	Author    string    `json:"author,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Key       string    `json:"key,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	AfterSeq  uint64    `json:"after_seq,omitempty"`
	Limit     int       `json:"limit,omitempty"`
	Ascending bool      `json:"ascending,omitempty"`
}

// MemoryRecords is the result of HostMemoryPut and HostMemoryQuery.
type MemoryRecords struct {
	Records []MemoryRecord `json:"records"`
}

// HTTPRequest is the payload of HostHTTPFetch. Method defaults to GET.
// Timeout, when set, shortens the host's limit; it never extends it.
type HTTPRequest struct {
	Method  string              `json:"method,omitempty"`
	URL     string              `json:"url"`
	Header  map[string][]string `json:"header,omitempty"`
	Body    []byte              `json:"body,omitempty"`
	Timeout time.Duration       `json:"timeout,omitempty"`
}

// HTTPResponse is the result of HostHTTPFetch.
type HTTPResponse struct {
	Status int                 `json:"status"`
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
}

// EmitArgs is the payload of HostEmit.
type EmitArgs struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// KeyArgs is the payload of HostConfig (a config key) and HostSecret (a
// secret name).
type KeyArgs struct {
	Key string `json:"key"`
}

// Value is the result of HostConfig and HostSecret.
type Value struct {
	Value string `json:"value"`
}

// Clock is the result of HostClock.
type Clock struct {
	UnixNano int64 `json:"unix_nano"`
}
