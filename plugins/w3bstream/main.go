// Command w3bstream is the depai plugin that sends a robot's data to an
// IoTeX W3bstream-style ingestion node as signed device messages (see
// internal/ws for the format): readings from the agent's memory, or any JSON
// a caller gives, each message signed by the agent's identity key through
// the core's identity.sign — the key never reaches the plugin — and the
// proof status of every message tracked.
//
// It needs nothing but the host's http.fetch, memory, the clock and
// identity.sign, so it runs as a WASM plugin. Which node it may reach and
// which memory it reads and writes are the operator's grants (http,
// memory_read, memory_write), not this plugin's choice: it requests none of
// its own.
//
// Config (granted keys):
//
//	endpoint         the node's base URL, e.g. https://sprout.example:9000
//	project_id       the W3bstream project (an unsigned integer)
//	project_version  the project's version, e.g. 0.1
//	readings         a memory namespace: w3bstream.forward sends its
//	                 readings (kind reading), oldest first, each once
//	log              a memory namespace: every submitted message is recorded
//	                 there (which readings, the message ID, the proof state);
//	                 forward's cursor is the newest record
//	interval         a Go duration: forward that often from the run hook
//	                 (default: only when w3bstream.forward is called)
//	batch            readings per message (default 100, at most 1000)
//
// Refusals — a node answering an error, HTML or no message ID — are
// returned to the caller and logged; nothing is recorded as submitted that
// the node did not acknowledge.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/depai/depai/plugins/w3bstream/internal/ws"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

var configKeys = []string{"endpoint", "project_id", "project_version", "readings", "log", "interval", "batch"}

// Tags of the log's records.
const (
	tagSubmitted = "w3bstream:submitted"
	tagProof     = "w3bstream:proof"
)

func init() {
	sdk.Plugin("w3bstream", "0.1.0")
	sdk.Requests(wire.Capabilities{Config: configKeys, Sign: true, Clock: true})
	sdk.Tool("w3bstream.send", "Sends JSON data to the W3bstream project as a message signed by this agent.", send, sdk.Writes())
	sdk.Tool("w3bstream.forward", "Sends the readings not yet sent, oldest first, as one signed message.", forward, sdk.Writes())
	sdk.Tool("w3bstream.proof", "The proof states of a submitted message, from the node (recorded in the log when final).", proof)
	sdk.Tool("w3bstream.status", "The newest submitted messages, their proof states, and the forward cursor.", status)
	sdk.Run(run)
}

func main() { sdk.Main() }

type settings struct {
	endpoint *url.URL
	project  uint64
	version  string
	readings string
	log      string
	interval time.Duration
	batch    int
}

func config(ctx context.Context) (settings, error) {
	vals, err := sdk.ConfigValues(ctx, configKeys...)
	if err != nil {
		return settings{}, err
	}
	bad := func(key, msg string) error {
		return sdk.Errorf(wire.CodeInvalidArgument, "w3bstream config %s %q: %s", key, vals[key], msg)
	}
	s := settings{version: vals["project_version"], readings: vals["readings"], log: vals["log"], batch: 100}
	u, err := url.Parse(vals["endpoint"])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return s, bad("endpoint", "want the node's http(s) base URL")
	}
	s.endpoint = u
	if s.project, err = strconv.ParseUint(vals["project_id"], 10, 64); err != nil {
		return s, bad("project_id", "want the project's number")
	}
	if s.version == "" {
		return s, bad("project_version", "want the project's version, such as 0.1")
	}
	if v, ok := vals["interval"]; ok {
		if s.interval, err = time.ParseDuration(v); err != nil || s.interval < time.Second {
			return s, bad("interval", "want a Go duration of at least 1s, such as 1m")
		}
	}
	if v, ok := vals["batch"]; ok {
		if s.batch, err = strconv.Atoi(v); err != nil || s.batch < 1 || s.batch > 1000 {
			return s, bad("batch", "want 1-1000")
		}
	}
	return s, nil
}

// Submitted is what a send or forward did, and a log record's data.
type Submitted struct {
	MessageID string    `json:"message_id,omitempty" jsonschema:"the node's ID of the message; empty when nothing was sent"`
	Device    string    `json:"device,omitempty" jsonschema:"the signer's did:key"`
	Project   uint64    `json:"project_id"`
	Version   string    `json:"project_version"`
	Bytes     int       `json:"bytes" jsonschema:"size of the message's data"`
	Readings  int       `json:"readings" jsonschema:"readings in the message (forward)"`
	FirstSeq  uint64    `json:"first_seq,omitempty" jsonschema:"memory sequence of the first reading sent"`
	LastSeq   uint64    `json:"last_seq,omitempty" jsonschema:"and of the last: forward's cursor"`
	Sent      time.Time `json:"sent,omitzero"`
}

// submit signs data as a message of the project and posts it; the node's
// acknowledgement is recorded in the log when one is configured.
func submit(ctx context.Context, cfg settings, data []byte, sub Submitted) (Submitted, error) {
	m := ws.Message{ProjectID: cfg.project, ProjectVersion: cfg.version, Data: string(data)}
	sig, err := sdk.Sign(ctx, m.Canonical())
	if err != nil {
		return sub, fmt.Errorf("w3bstream: sign the message: %w", err)
	}
	m.Signature, m.DeviceDID, m.Plugin = ws.EncodeSignature(sig.Signature), sig.Signer, sig.Plugin
	body, err := json.Marshal(m)
	if err != nil {
		return sub, sdk.Errorf(wire.CodeInternal, "w3bstream: encode the message: %v", err)
	}
	resp, err := sdk.HTTPFetch(ctx, sdk.Request{Method: "POST", URL: cfg.endpoint.JoinPath("message").String(),
		Header: map[string][]string{"Content-Type": {"application/json"}}, Body: body})
	if err != nil {
		return sub, fmt.Errorf("w3bstream: POST /message: %w", err)
	}
	id, err := ws.ParseSubmit(resp.Status, resp.Body)
	if err != nil {
		return sub, &wire.Error{Code: wire.CodeUnavailable, Message: "w3bstream: the node refused the message: " + err.Error(), Retryable: resp.Status == 429 || resp.Status >= 500}
	}
	now, _ := sdk.Now(ctx)
	sub.MessageID, sub.Device, sub.Project, sub.Version, sub.Bytes, sub.Sent = id, sig.Signer, cfg.project, cfg.version, len(data), now
	if cfg.log != "" {
		rec, _ := json.Marshal(sub)
		if _, err := sdk.MemoryPut(ctx, sdk.Record{Namespace: cfg.log, Kind: "observation", Data: rec,
			Text: fmt.Sprintf("w3bstream message %s sent to project %d: %d readings, %d bytes", id, cfg.project, sub.Readings, sub.Bytes),
			Tags: []string{tagSubmitted, "message:" + id}}); err != nil {
			// The node has the message; not recording it would send its
			// readings again. Say so loudly rather than hide it.
			return sub, fmt.Errorf("w3bstream: message %s was accepted but not recorded in %s (its readings will be sent again): %w", id, cfg.log, err)
		}
	}
	return sub, nil
}

// SendIn is w3bstream.send's input.
type SendIn struct {
	Data json.RawMessage `json:"data" jsonschema:"the JSON to send as the message's data"`
}

func send(ctx context.Context, in SendIn) (Submitted, error) {
	cfg, err := config(ctx)
	if err != nil {
		return Submitted{}, err
	}
	if len(in.Data) == 0 || !json.Valid(in.Data) {
		return Submitted{}, sdk.Errorf(wire.CodeInvalidArgument, "data: want JSON")
	}
	return submit(ctx, cfg, in.Data, Submitted{})
}

// ForwardIn is w3bstream.forward's input.
type ForwardIn struct {
	Limit int `json:"limit,omitempty" jsonschema:"at most this many readings (default: the batch config)"`
}

// Reading is one reading as a forwarded message's data carries it.
type Reading struct {
	Seq    uint64          `json:"seq"`
	Time   time.Time       `json:"time"`
	Sensor string          `json:"sensor,omitempty"`
	Data   json.RawMessage `json:"data"`
}

// Batch is a forwarded message's data.
type Batch struct {
	Readings []Reading `json:"readings"`
}

func forward(ctx context.Context, in ForwardIn) (Submitted, error) {
	cfg, err := config(ctx)
	if err != nil {
		return Submitted{}, err
	}
	return forwardWith(ctx, cfg, in.Limit)
}

func forwardWith(ctx context.Context, cfg settings, limit int) (Submitted, error) {
	if cfg.readings == "" || cfg.log == "" {
		return Submitted{}, sdk.Errorf(wire.CodeInvalidArgument, "w3bstream: forward needs the readings and log config (a memory namespace each)")
	}
	if limit <= 0 || limit > cfg.batch {
		limit = cfg.batch
	}
	cursor, err := lastSeq(ctx, cfg)
	if err != nil {
		return Submitted{}, err
	}
	recs, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: cfg.readings, Kinds: []string{"reading"}, AfterSeq: cursor, Ascending: true, Limit: limit})
	if err != nil {
		return Submitted{}, fmt.Errorf("w3bstream: read %s: %w", cfg.readings, err)
	}
	if len(recs) == 0 {
		return Submitted{LastSeq: cursor, Project: cfg.project, Version: cfg.version}, nil
	}
	var b Batch
	for _, r := range recs {
		rd := Reading{Seq: r.Seq, Time: r.Time, Data: r.Data}
		for _, t := range r.Tags {
			if s, ok := strings.CutPrefix(t, "sensor:"); ok {
				rd.Sensor = s
			}
		}
		if len(rd.Data) == 0 {
			rd.Data = json.RawMessage("null")
		}
		b.Readings = append(b.Readings, rd)
	}
	data, err := json.Marshal(b)
	if err != nil {
		return Submitted{}, sdk.Errorf(wire.CodeInternal, "w3bstream: encode readings: %v", err)
	}
	return submit(ctx, cfg, data, Submitted{Readings: len(recs), FirstSeq: recs[0].Seq, LastSeq: recs[len(recs)-1].Seq})
}

// lastSeq is forward's cursor: the last reading of the newest message the
// log records.
func lastSeq(ctx context.Context, cfg settings) (uint64, error) {
	recs, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: cfg.log, Kinds: []string{"observation"}, Tags: []string{tagSubmitted}, Limit: 50})
	if err != nil {
		return 0, fmt.Errorf("w3bstream: read the log %s: %w", cfg.log, err)
	}
	var seq uint64
	for _, r := range recs {
		var s Submitted
		if json.Unmarshal(r.Data, &s) == nil {
			seq = max(seq, s.LastSeq)
		}
	}
	return seq, nil
}

// ProofIn is w3bstream.proof's input.
type ProofIn struct {
	MessageID string `json:"message_id"`
}

// Proof is w3bstream.proof's answer.
type Proof struct {
	MessageID string     `json:"message_id"`
	State     string     `json:"state" jsonschema:"the newest state: received, fetched, proving, proved, failed …"`
	Final     bool       `json:"final" jsonschema:"proved or failed: the state will not change"`
	Comment   string     `json:"comment,omitempty" jsonschema:"for proved, the hash of the transaction that wrote the proof"`
	States    []ws.State `json:"states"`
}

func proof(ctx context.Context, in ProofIn) (Proof, error) {
	cfg, err := config(ctx)
	if err != nil {
		return Proof{}, err
	}
	if in.MessageID == "" || strings.ContainsAny(in.MessageID, "/?#") {
		return Proof{}, sdk.Errorf(wire.CodeInvalidArgument, "message_id %q: want the ID the node gave", in.MessageID)
	}
	resp, err := sdk.HTTPFetch(ctx, sdk.Request{URL: cfg.endpoint.JoinPath("message", in.MessageID).String()})
	if err != nil {
		return Proof{}, fmt.Errorf("w3bstream: GET /message/%s: %w", in.MessageID, err)
	}
	st, err := ws.ParseStatus(resp.Status, resp.Body)
	if err != nil {
		return Proof{}, &wire.Error{Code: wire.CodeUnavailable, Message: fmt.Sprintf("w3bstream: message %s: %v", in.MessageID, err), Retryable: true}
	}
	last := st.Latest()
	p := Proof{MessageID: in.MessageID, State: last.State, Comment: last.Comment, States: st.States,
		Final: last.State == ws.StateProved || last.State == ws.StateFailed}
	if p.Final && cfg.log != "" {
		if err := recordProof(ctx, cfg, p); err != nil {
			return p, err
		}
	}
	return p, nil
}

// recordProof records a final proof state once.
func recordProof(ctx context.Context, cfg settings, p Proof) error {
	tag := "message:" + p.MessageID
	old, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: cfg.log, Kinds: []string{"observation"}, Tags: []string{tagProof, tag}, Limit: 1})
	if err != nil || len(old) > 0 {
		return err
	}
	data, _ := json.Marshal(p)
	_, err = sdk.MemoryPut(ctx, sdk.Record{Namespace: cfg.log, Kind: "observation", Data: data,
		Text: fmt.Sprintf("w3bstream message %s: %s %s", p.MessageID, p.State, p.Comment), Tags: []string{tagProof, tag}})
	return err
}

// StatusIn is w3bstream.status's input.
type StatusIn struct {
	Limit int `json:"limit,omitempty" jsonschema:"at most this many messages (default 20)"`
}

// Message is one submitted message in w3bstream.status.
type Message struct {
	Submitted
	State string `json:"state,omitempty" jsonschema:"its final proof state, when w3bstream.proof saw one"`
}

// StatusOut is w3bstream.status's answer.
type StatusOut struct {
	Endpoint string    `json:"endpoint"`
	Project  uint64    `json:"project_id"`
	Cursor   uint64    `json:"cursor" jsonschema:"the last reading sent, by memory sequence"`
	Messages []Message `json:"messages" jsonschema:"newest first"`
}

func status(ctx context.Context, in StatusIn) (StatusOut, error) {
	cfg, err := config(ctx)
	if err != nil {
		return StatusOut{}, err
	}
	out := StatusOut{Endpoint: cfg.endpoint.String(), Project: cfg.project, Messages: []Message{}}
	if cfg.log == "" {
		return out, nil
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 20
	}
	subs, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: cfg.log, Kinds: []string{"observation"}, Tags: []string{tagSubmitted}, Limit: limit})
	if err != nil {
		return out, fmt.Errorf("w3bstream: read the log %s: %w", cfg.log, err)
	}
	proofs, err := sdk.MemoryQuery(ctx, sdk.Query{Namespace: cfg.log, Kinds: []string{"observation"}, Tags: []string{tagProof}, Limit: 1000})
	if err != nil {
		return out, fmt.Errorf("w3bstream: read the log %s: %w", cfg.log, err)
	}
	final := map[string]string{}
	for _, r := range proofs {
		var p Proof
		if json.Unmarshal(r.Data, &p) == nil {
			final[p.MessageID] = p.State
		}
	}
	for _, r := range subs {
		var s Submitted
		if json.Unmarshal(r.Data, &s) != nil {
			continue
		}
		out.Cursor = max(out.Cursor, s.LastSeq)
		out.Messages = append(out.Messages, Message{Submitted: s, State: final[s.MessageID]})
	}
	slices.SortStableFunc(out.Messages, func(a, b Message) int { return b.Sent.Compare(a.Sent) })
	return out, nil
}

// run forwards every interval, when one is configured. On WASM it runs in
// an instance of its own; the cursor lives in the log, so it and the tools
// agree on what was sent.
func run(ctx context.Context) error {
	cfg, err := config(ctx)
	if err != nil {
		return err
	}
	if cfg.interval == 0 {
		return nil
	}
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.interval):
		}
		sub, err := forwardWith(ctx, cfg, 0)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			// One line per new error, not one per interval.
			if msg := err.Error(); msg != lastErr {
				sdk.Log(ctx, slog.LevelWarn, "w3bstream: forward failed", "err", msg)
				lastErr = msg
			}
		case sub.MessageID != "":
			lastErr = ""
			sdk.Log(ctx, slog.LevelInfo, "w3bstream: forwarded", "message", sub.MessageID, "readings", sub.Readings)
		}
		if we, ok := errors.AsType[*wire.Error](err); ok && we.Code == wire.CodeInvalidArgument {
			return err
		}
	}
}
