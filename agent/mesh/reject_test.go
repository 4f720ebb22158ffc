package mesh

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/depai/depai/agent/identity"
)

// rawConn connects as a fleet agent, to send hand-made messages.
func rawConn(t *testing.T, n *Node, name string) *nats.Conn {
	t.Helper()
	a := mustAgent(t, n, name)
	nc, err := nats.Connect(n.ClientURL(), nats.Nkey(a.cfg.Identity.NKey(), func(b []byte) ([]byte, error) { return a.cfg.Identity.Sign(b), nil }),
		nats.CustomInboxPrefix(inboxPrefix(name)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Every kind of bad message to an agent's inbox is refused with a
// Rejection naming why, and never reaches the handler.
func TestBadMessagesAreRejected(t *testing.T) {
	var rej rejections
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob", "mallory"), OnReject: rej.add,
		Limits: Limits{MaxMessageBytes: 4 << 10, Rate: 1000, Burst: 1000}})
	var handled atomic.Int32
	bob := mustAgent(t, n, "bob")
	bob.Serve(HandlerFunc(func(_ context.Context, env Envelope) (json.RawMessage, error) {
		handled.Add(1)
		return env.Payload, nil
	}))
	mallory := mustAgent(t, n, "mallory")
	nc := rawConn(t, n, "mallory")
	alice := key(t, "alice")
	stranger := key(t, "stranger")

	good := func() Envelope {
		return Envelope{Schema: "depai.ask", Version: 1, To: bob.DID(), Payload: json.RawMessage(`"hi"`), Expires: time.Now().Add(time.Minute)}
	}
	sealAs := func(id *identity.Identity, name string, e Envelope) []byte {
		data, err := seal(id, name, &e)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	replayed := sealAs(mallory.cfg.Identity, "mallory", good())
	cases := []struct {
		name string
		data []byte
		want Reason
	}{
		{"malformed", []byte(`{"schema":`), ReasonMalformed},
		{"unknown field", []byte(`{"schema":"x","v":1,"nonce":"n","exp":"2099-01-01T00:00:00Z","evil":1}`), ReasonMalformed},
		{"unsigned", func() []byte {
			e := good()
			e.From, e.FromName, e.Nonce = mallory.DID(), "mallory", "n-unsigned"
			b, _ := json.Marshal(e)
			return b
		}(), ReasonUnsigned},
		{"wrong signature (mallory signs as alice)", func() []byte {
			var e Envelope
			json.Unmarshal(sealAs(mallory.cfg.Identity, "mallory", good()), &e)
			e.From, e.FromName = alice.DID(), "alice"
			b, _ := json.Marshal(e)
			return b
		}(), ReasonBadSignature},
		{"tampered payload", func() []byte {
			var e Envelope
			json.Unmarshal(sealAs(mallory.cfg.Identity, "mallory", good()), &e)
			e.Payload = json.RawMessage(`"move to 0,0"`)
			b, _ := json.Marshal(e)
			return b
		}(), ReasonBadSignature},
		{"foreign DID", sealAs(stranger, "stranger", good()), ReasonForeign},
		{"foreign key under a member's name", sealAs(stranger, "alice", good()), ReasonForeign},
		{"expired", func() []byte {
			e := good()
			e.Expires = time.Now().Add(-time.Second)
			return sealAs(mallory.cfg.Identity, "mallory", e)
		}(), ReasonExpired},
		{"expiry too far ahead", func() []byte {
			e := good()
			e.Expires = time.Now().Add(time.Hour)
			return sealAs(mallory.cfg.Identity, "mallory", e)
		}(), ReasonExpired},
		{"misrouted", func() []byte { e := good(); e.To = alice.DID(); return sealAs(mallory.cfg.Identity, "mallory", e) }(), ReasonMisrouted},
		{"hop limit", func() []byte { e := good(); e.Hops = 9; return sealAs(mallory.cfg.Identity, "mallory", e) }(), ReasonHops},
		{"oversize", func() []byte {
			e := good()
			e.Payload = json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)
			return sealAs(mallory.cfg.Identity, "mallory", e)
		}(), ReasonOversize},
		{"first send of a message", replayed, ""},
		{"replay", replayed, ReasonReplay},
	}
	for _, tc := range cases {
		before := len(rej.list())
		m, err := nc.Request(InboxSubject("bob"), tc.data, 3*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := rej.list()[before:]
		if tc.want == "" {
			if len(got) != 0 {
				t.Fatalf("%s: refused: %+v", tc.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Reason != tc.want || got[0].Agent != "bob" || got[0].Subject != InboxSubject("bob") {
			t.Fatalf("%s: rejections %+v, want one %s", tc.name, got, tc.want)
		}
		// The refusal is answered with a signed error naming the reason.
		var rep Envelope
		if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Schema != schemaError || !strings.Contains(string(rep.Payload), string(tc.want)) {
			t.Fatalf("%s: reply %s", tc.name, m.Data)
		}
		if err := identity.Verify(bob.DID(), rep.canonical(), rep.Sig); err != nil {
			t.Fatalf("%s: error reply is not signed by bob: %v", tc.name, err)
		}
	}
	if h := handled.Load(); h != 1 {
		t.Fatalf("handler ran %d times, want once (the one good message)", h)
	}
}

// A flood from one agent is cut off at its rate; other agents still get
// through.
func TestFloodIsRateLimited(t *testing.T) {
	var rej rejections
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob", "mallory"), OnReject: rej.add,
		Limits: Limits{Rate: 5, Burst: 10}})
	var handled atomic.Int32
	mustAgent(t, n, "bob").Serve(HandlerFunc(func(_ context.Context, env Envelope) (json.RawMessage, error) {
		handled.Add(1)
		return nil, nil
	}))
	mallory := mustAgent(t, n, "mallory")
	nc := rawConn(t, n, "mallory")
	bob := mustAgent(t, n, "bob")
	for range 100 {
		e := Envelope{Schema: "depai.ask", Version: 1, To: bob.DID(), Expires: time.Now().Add(time.Minute)}
		data, _ := seal(mallory.cfg.Identity, "mallory", &e)
		nc.Publish(InboxSubject("bob"), data)
	}
	nc.Flush()
	waitFor(t, 5*time.Second, "the flood to be refused", func() bool { return len(rej.list()) >= 85 })
	for _, r := range rej.list() {
		if r.Reason != ReasonRate || r.From != mallory.DID() {
			t.Fatalf("rejection %+v, want rate from mallory", r)
		}
	}
	if h := handled.Load(); h > 15 {
		t.Fatalf("%d of 100 flood messages were handled; the burst is 10", h)
	}
	// alice is not held back by mallory's flood.
	if _, err := mustAgent(t, n, "alice").Ask(context.Background(), "bob", nil, AskOptions{Timeout: 3 * time.Second}); err != nil {
		t.Fatalf("alice during mallory's flood: %v", err)
	}
}

// A forged reply (signed by someone else, or answering another request) is
// refused by the asker.
func TestForgedReplyIsRejected(t *testing.T) {
	var rej rejections
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob", "mallory"), OnReject: rej.add})
	bob := mustAgent(t, n, "bob")
	mallory := mustAgent(t, n, "mallory")
	alice := mustAgent(t, n, "alice")
	// bob's handler answers with a reply mallory signed, as if a relay had swapped it.
	nc := rawConn(t, n, "bob")
	nc.Subscribe(InboxSubject("bob"), func(m *nats.Msg) {
		var req Envelope
		json.Unmarshal(m.Data, &req)
		e := Envelope{Schema: "depai.reply", Version: 1, To: req.From, Re: req.Nonce, Expires: time.Now().Add(time.Minute)}
		data, _ := seal(mallory.cfg.Identity, "mallory", &e)
		m.Respond(data)
	})
	nc.Flush()
	_ = bob
	_, err := alice.Ask(context.Background(), "bob", nil, AskOptions{Timeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), string(ReasonMisrouted)) {
		t.Fatalf("forged reply: %v", err)
	}
	if got := rej.list(); len(got) != 1 || got[0].Agent != "alice" {
		t.Fatalf("rejections %+v", got)
	}
}
