package mesh

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/depai/depai/agent/identity"
)

// FuzzOpenEnvelope feeds arbitrary bytes to the receive path: it must
// refuse with a *RejectError or accept a message that really verifies,
// never panic.
func FuzzOpenEnvelope(f *testing.F) {
	id, _ := identity.FromSeed(make([]byte, 32))
	e := Envelope{Schema: "depai.ask", Version: 1, Payload: json.RawMessage(`{"a":1}`), Expires: time.Now().Add(time.Minute)}
	good, _ := seal(id, "a", &e)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema":"x","v":1,"nonce":"n","exp":"2099-01-01T00:00:00Z","sig":"AAAA"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := newVerifier(Limits{}, func(did, name string) bool { return did == id.DID() })
		env, err := v.open("s", data, "")
		if err != nil {
			if _, ok := err.(*RejectError); !ok {
				t.Fatalf("error %T %v, want *RejectError", err, err)
			}
			return
		}
		if identity.Verify(env.From, env.canonical(), env.Sig) != nil || env.From != id.DID() {
			t.Fatalf("accepted an envelope that does not verify: %+v", env)
		}
	})
}

// FuzzParseCard: a card is accepted only if its signature verifies.
func FuzzParseCard(f *testing.F) {
	id, _ := identity.FromSeed(make([]byte, 32))
	c := Card{Name: "a", Node: "n", Status: StatusOnline, Heartbeat: time.Now(), Pose: &Pose{Lat: 1}}
	good, _ := c.sign(id)
	f.Add("a", good)
	f.Add("a", []byte(`{"name":"a"}`))
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		c, err := parseCard(key, data)
		if err != nil {
			return
		}
		msg, _ := c.signed()
		if c.Name != key || identity.Verify(c.DID, msg, c.Sig) != nil {
			t.Fatalf("accepted a card that does not verify: %+v", c)
		}
	})
}
