package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/hosttest"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/plugins/w3bstream/internal/ws"
	"github.com/depai/depai/sdk/wire"
)

// node is an in-test W3bstream-style API node: POST /message and
// GET /message/{id} as internal/ws describes them, verifying every
// message's Ed25519 signature over wire.SignedBytes(plugin, canonical JSON)
// against the deviceDID it carries. No real W3bstream node can run here (it
// needs docker, Postgres, a chain and provers), so this is a contract test of
// the documented message API; it speaks real HTTP on 127.0.0.1.
type node struct {
	srv *httptest.Server

	mu       sync.Mutex
	accepted []ws.Message
	refused  []string
	queries  map[string]int
	down     bool // answer 503 with an HTML page
}

func newNode(t *testing.T) *node {
	n := &node{queries: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /message", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.down {
			w.WriteHeader(503)
			fmt.Fprint(w, "<html>maintenance</html>")
			return
		}
		var m ws.Message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			n.refuse(w, "bad JSON: "+err.Error())
			return
		}
		sig, err := m.SignatureBytes()
		if err != nil {
			n.refuse(w, err.Error())
			return
		}
		if err := identity.Verify(m.DeviceDID, wire.SignedBytes(m.Plugin, m.Canonical()), sig); err != nil {
			n.refuse(w, "signature: "+err.Error())
			return
		}
		n.accepted = append(n.accepted, m)
		fmt.Fprintf(w, `{"messageID":"msg-%d"}`, len(n.accepted))
	})
	mux.HandleFunc("GET /message/{id}", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		id := r.PathValue("id")
		n.queries[id]++
		// received at once, proved from the second query on.
		states := `[{"state":"received","time":"2026-12-01T12:00:00Z"}]`
		if n.queries[id] > 1 {
			states = `[{"state":"received","time":"2026-12-01T12:00:00Z"},{"state":"proving","time":"2026-12-01T12:00:01Z"},{"state":"proved","time":"2026-12-01T12:00:05Z","comment":"0xfeed"}]`
		}
		fmt.Fprintf(w, `{"messageID":%q,"states":%s}`, id, states)
	})
	n.srv = httptest.NewServer(mux)
	t.Cleanup(n.srv.Close)
	return n
}

func (n *node) refuse(w http.ResponseWriter, why string) {
	n.refused = append(n.refused, why)
	w.WriteHeader(400)
	fmt.Fprintf(w, `{"error":%q}`, why)
}

func (n *node) messages() []ws.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ws.Message(nil), n.accepted...)
}

// idSigner is the core's side of identity.sign over a real identity key.
type idSigner struct{ id *identity.Identity }

func (s idSigner) Sign(_ context.Context, msg []byte) (host.Signed, error) {
	return host.Signed{DID: s.id.DID(), PublicKey: s.id.PublicKey(), Signature: s.id.Sign(msg)}, nil
}

func newID(t *testing.T) *identity.Identity {
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	id, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const (
	readingsNS = "agents/rover/gnss"
	logNS      = "agents/rover/w3bstream"
)

// load builds the plugin to WASM and loads it behind the real host, granted
// what it requests plus the node's host and the two namespaces.
func load(t *testing.T, n *node, id *identity.Identity, extra map[string]string) *hosttest.Plugin {
	cfg := map[string]string{"endpoint": n.srv.URL, "project_id": "91", "project_version": "0.1", "readings": readingsNS, "log": logNS}
	for k, v := range extra {
		cfg[k] = v
	}
	return hosttest.New(t, hosttest.Signer(idSigner{id}), hosttest.Config(cfg), hosttest.Grants(wire.Capabilities{
		Config: configKeys, Sign: true, Clock: true,
		HTTP:       []string{strings.TrimPrefix(n.srv.URL, "http://")},
		MemoryRead: []string{readingsNS, logNS}, MemoryWrite: []string{logNS},
	}))
}

func putReadings(t *testing.T, s memory.Store, n int) {
	for i := range n {
		if _, err := s.Put(context.Background(), memory.Record{Namespace: readingsNS, Kind: memory.KindReading, Author: "gnss",
			Data: json.RawMessage(fmt.Sprintf(`{"quality":"rtk_fixed","lat":48.1173,"i":%d}`, i)), Tags: []string{"plugin:gnss", "sensor:gnss.fix"}}); err != nil {
			t.Fatal(err)
		}
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}

// TestForward: readings go out once each, oldest first, in messages the
// node verifies against the agent's did:key; the proof is tracked to
// proved and recorded; a node that refuses leaves nothing recorded.
func TestForward(t *testing.T) {
	n := newNode(t)
	id := newID(t)
	p := load(t, n, id, nil)
	putReadings(t, p.Store(), 3)

	sub, err := hosttest.CallAs[Submitted](p, "w3bstream.forward", ForwardIn{})
	if err != nil {
		t.Fatal(err)
	}
	if sub.MessageID != "msg-1" || sub.Readings != 3 || sub.Device != id.DID() || sub.FirstSeq == 0 || sub.LastSeq <= sub.FirstSeq {
		t.Fatalf("forward = %+v", sub)
	}
	ms := n.messages()
	if len(ms) != 1 || ms[0].ProjectID != 91 || ms[0].ProjectVersion != "0.1" || ms[0].Plugin != "w3bstream" {
		t.Fatalf("node got %+v (refused %v)", ms, n.refused)
	}
	var b Batch
	if err := json.Unmarshal([]byte(ms[0].Data), &b); err != nil || len(b.Readings) != 3 || b.Readings[0].Sensor != "gnss.fix" || !strings.Contains(string(b.Readings[2].Data), `"i":2`) {
		t.Fatalf("message data %s, %v", ms[0].Data, err)
	}

	if again, err := hosttest.CallAs[Submitted](p, "w3bstream.forward", ForwardIn{}); err != nil || again.MessageID != "" || again.LastSeq != sub.LastSeq || len(n.messages()) != 1 {
		t.Fatalf("forward with nothing new = %+v, %v; %d messages", again, err, len(n.messages()))
	}
	putReadings(t, p.Store(), 2)
	if next, err := hosttest.CallAs[Submitted](p, "w3bstream.forward", ForwardIn{}); err != nil || next.Readings != 2 || next.FirstSeq <= sub.LastSeq {
		t.Fatalf("second forward = %+v, %v", next, err)
	}

	pr, err := hosttest.CallAs[Proof](p, "w3bstream.proof", ProofIn{MessageID: "msg-1"})
	if err != nil || pr.State != "received" || pr.Final {
		t.Fatalf("first proof = %+v, %v", pr, err)
	}
	if pr, err = hosttest.CallAs[Proof](p, "w3bstream.proof", ProofIn{MessageID: "msg-1"}); err != nil || pr.State != "proved" || !pr.Final || pr.Comment != "0xfeed" || len(pr.States) != 3 {
		t.Fatalf("second proof = %+v, %v", pr, err)
	}

	n.mu.Lock()
	n.down = true
	n.mu.Unlock()
	putReadings(t, p.Store(), 1)
	if _, err := p.Call("w3bstream.forward", ForwardIn{}); !isCode(err, wire.CodeUnavailable) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("forward to a node that is down = %v; want unavailable naming the 503", err)
	}
	st, err := hosttest.CallAs[StatusOut](p, "w3bstream.status", StatusIn{})
	if err != nil || len(st.Messages) != 2 || st.Cursor != st.Messages[0].LastSeq {
		t.Fatalf("status = %+v, %v", st, err)
	}
	states := map[string]string{}
	for _, m := range st.Messages {
		states[m.MessageID] = m.State
	}
	if states["msg-1"] != "proved" || states["msg-2"] != "" {
		t.Fatalf("states %v", states)
	}
	n.mu.Lock()
	n.down = false
	n.mu.Unlock()
	if sub, err := hosttest.CallAs[Submitted](p, "w3bstream.forward", ForwardIn{}); err != nil || sub.Readings != 1 {
		t.Fatalf("forward after the node came back = %+v, %v; want the reading that failed", sub, err)
	}
	if sent, err := hosttest.CallAs[Submitted](p, "w3bstream.send", SendIn{Data: json.RawMessage(`{"battery":0.8}`)}); err != nil || sent.MessageID != "msg-4" {
		t.Fatalf("send = %+v, %v", sent, err)
	}
	if len(n.refused) != 0 {
		t.Fatalf("the node refused %v", n.refused)
	}
}

// TestRunHook: with interval set, the run hook forwards on its own.
func TestRunHook(t *testing.T) {
	n := newNode(t)
	p := load(t, n, newID(t), map[string]string{"interval": "1s"})
	putReadings(t, p.Store(), 2)
	for deadline := time.Now().Add(15 * time.Second); len(n.messages()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the run hook forwarded nothing in 15s")
		}
	}
	var b Batch
	if err := json.Unmarshal([]byte(n.messages()[0].Data), &b); err != nil || len(b.Readings) != 2 {
		t.Fatalf("forwarded %s, %v", n.messages()[0].Data, err)
	}
}

// TestRefusals: bad config names the key; without the sign grant the
// plugin does not load; a node that forges nothing still refuses a
// message signed over the bare canonical JSON (the core never signs that).
func TestRefusals(t *testing.T) {
	n := newNode(t)
	for key, val := range map[string]string{"project_id": "x", "endpoint": "ftp://x", "interval": "10ms", "batch": "0"} {
		p := load(t, n, newID(t), map[string]string{key: val})
		if _, err := p.Call("w3bstream.status", StatusIn{}); !isCode(err, wire.CodeInvalidArgument) || !strings.Contains(err.Error(), key) {
			t.Errorf("config %s=%q: %v; want invalid_argument naming it", key, val, err)
		}
	}
	if _, err := hosttest.Load(t, hosttest.Grants(wire.Capabilities{Config: configKeys, Clock: true})); err == nil || !strings.Contains(err.Error(), "sign") {
		t.Fatalf("load without the sign grant: %v; want a refusal naming it", err)
	}
	id := newID(t)
	m := ws.Message{ProjectID: 1, ProjectVersion: "0.1", Data: "{}", DeviceDID: id.DID(), Plugin: "w3bstream"}
	m.Signature = ws.EncodeSignature(id.Sign(m.Canonical()))
	body, _ := json.Marshal(m)
	resp, err := http.Post(n.srv.URL+"/message", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("a bare-canonical signature got %d; want 400", resp.StatusCode)
	}
}
