package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// MemoryWriter is what POST /v1/memory/{namespace} needs: a write decided
// by the policy engine and committed with its audit record.
// *policy.Engine satisfies it.
type MemoryWriter interface {
	AuthorizeWrite(ctx context.Context, a policy.Action, w memory.Write) (memory.Written, error)
}

var _ MemoryWriter = (*policy.Engine)(nil)

// Put is the body of POST /v1/memory/{namespace}: one record. The author is
// the operator whose token the request carries.
type Put struct {
	Kind      memory.Kind     `json:"kind"`
	Text      string          `json:"text,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Tags      []string        `json:"tags,omitempty"`
	Key       string          `json:"key,omitempty"`
	Time      time.Time       `json:"time,omitzero"`
	ExpiresAt time.Time       `json:"expires_at,omitzero"`
}

// PutResult is the answer to a put: the record as stored. Replayed says that
// an earlier request with the same Idempotency-Key stored it and this one
// stored nothing (the answer also carries the header Idempotent-Replayed:
// true, and status 200 instead of 201).
type PutResult struct {
	Record   memory.Record `json:"record"`
	Replayed bool          `json:"replayed,omitempty"`
}

// Codes of the memory route.
const (
	CodeKeyReused   = "idempotency_key_reused"
	CodeBadKey      = "bad_idempotency_key"
	CodeBadRecord   = "invalid_record"
	CodeDiskFull    = "disk_full"
	CodeDenied      = "denied"
	CodeUnavailable = "unavailable"
)

// maxIdempotencyKey bounds the Idempotency-Key header (a UUID is 36 bytes).
const maxIdempotencyKey = 128

// putMemory appends one record to a namespace: POST /v1/memory/{namespace...}.
// The put passes the policy engine as the operator (memory.put, a write:
// the operator role) and commits with its audit record. With an
// Idempotency-Key header, a retry of the request — after a timeout, a lost
// answer, a restart of depai — stores nothing and answers with the record
// the first one stored; the same key with another body is refused (422).
// Keys are the operator's own: two operators' equal keys do not meet.
func (s *Server) putMemory(w http.ResponseWriter, r *http.Request) {
	op := r.Context().Value(opKey{}).(*credential)
	ns := r.PathValue("namespace")
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || !printable(key) {
		writeError(w, http.StatusBadRequest, CodeBadKey, fmt.Sprintf("Idempotency-Key is %d bytes; want 1 to %d printable ASCII characters, such as a UUID", len(key), maxIdempotencyKey))
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var p Put
	if err := decodeStrict(body, &p); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadJSON, fmt.Sprintf("request body: %v (expected {\"kind\": \"observation\", \"text\": \"...\"})", err))
		return
	}
	if p.Kind == memory.KindAudit || memory.Within(ns, policy.AuditNamespace) {
		writeError(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf("only depai writes audit records (kind %q, namespace %q); put kind %q into namespace %q elsewhere", memory.KindAudit, policy.AuditNamespace, p.Kind, ns))
		return
	}
	rec := memory.Record{Namespace: ns, Kind: p.Kind, Author: op.name, Text: p.Text, Data: p.Data, Tags: p.Tags, Key: p.Key, Time: p.Time, ExpiresAt: p.ExpiresAt}
	write := memory.Write{Recs: []memory.Record{rec}}
	if key != "" {
		write.Key = "api/" + op.name + "/" + key
	}
	// {"idempotency_key": key, "record": body}, built by hand: the key is
	// printable ASCII, which strconv quotes as JSON does, and body decoded
	// above (the audit log compacts it as it seals the entry).
	args := make([]byte, 0, len(body)+len(key)+40)
	args = append(args, '{')
	if key != "" {
		args = strconv.AppendQuote(append(args, `"idempotency_key":`...), key)
		args = append(args, ',')
	}
	args = append(append(append(args, `"record":`...), body...), '}')
	a := policy.Action{
		Principal: policy.Principal{Kind: policy.PrincipalOperator, ID: op.name, Role: op.role},
		Kind:      policy.ActionTool, Name: "memory.put", Effect: wire.EffectWrite, Target: ns, Args: args,
	}
	out, err := s.cfg.Memory.AuthorizeWrite(r.Context(), a, write)
	if err != nil {
		status, code := putStatus(err)
		writeError(w, status, code, err.Error())
		return
	}
	res := PutResult{Record: out.Recs[0], Replayed: !out.First}
	status := http.StatusCreated
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	writeJSON(w, status, res)
}

// putStatus maps a put's failure to its status and code.
func putStatus(err error) (int, string) {
	var we *wire.Error
	switch {
	case errors.Is(err, memory.ErrKeyReused):
		return http.StatusUnprocessableEntity, CodeKeyReused
	case errors.Is(err, memory.ErrInvalid):
		return http.StatusBadRequest, CodeBadRecord
	case errors.Is(err, memory.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.Is(err, memory.ErrDiskFull):
		return http.StatusInsufficientStorage, CodeDiskFull
	case errors.Is(err, memory.ErrClosed), errors.Is(err, memory.ErrReadOnly):
		return http.StatusServiceUnavailable, CodeUnavailable
	case errors.As(err, &we) && we.Code == wire.CodeForbidden:
		return http.StatusForbidden, CodeForbidden
	case errors.As(err, &we) && we.Code == wire.CodeDenied:
		return http.StatusConflict, CodeDenied
	case errors.As(err, &we) && we.Code == wire.CodeUnavailable:
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, "internal"
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
