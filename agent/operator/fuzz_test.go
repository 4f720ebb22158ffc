package operator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzMessageBody posts arbitrary bodies to a real server: every answer is
// a stream (valid message) or a JSON error with a 4xx status, never a 5xx,
// a hang or a crash.
func FuzzMessageBody(f *testing.F) {
	for _, s := range []string{`{"text":"/status"}`, `{"text":"stream","from":"x"}`, `{}`, `{"text":""}`, `[]`, `null`, `{"text":"a"} x`, `{"text":"\u0000"}`, "\xff", `{"text":1e999}`} {
		f.Add(s)
	}
	srv := startServer(f, newScriptedFleet("a").Agents())
	f.Fuzz(func(t *testing.T, body string) {
		req, err := http.NewRequest("POST", "http://"+srv.Addr()+"/v1/agents/a/messages", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case resp.StatusCode == 200:
			if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.Contains(string(b), "event: reply\n") {
				t.Errorf("200 without a streamed reply: %q", b)
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal(b, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Errorf("%d with a body that is not a JSON error: %q", resp.StatusCode, b)
			}
		default:
			t.Errorf("status %d for body %q: %s", resp.StatusCode, body, b)
		}
	})
}

// FuzzPutBody posts arbitrary bodies, namespaces and idempotency keys to
// the memory route of a real server over a real store: every answer is a
// stored record (201, or 200 for a replay) or a JSON error with a 4xx
// status, never a 5xx, a hang or a crash.
func FuzzPutBody(f *testing.F) {
	for _, s := range []string{`{"kind":"observation","text":"x"}`, `{"kind":"fact","text":"x","key":"k"}`, `{"kind":"audit"}`, `{"kind":"reading","data":{"v":1},"tags":["a",""]}`, `{"kind":"x","expires_at":"2000-01-01T00:00:00Z"}`, `{}`, `null`, "\xff"} {
		f.Add(s, "shared", "k1")
		f.Add(s, "agent/../x", "")
	}
	fx := openMemoryFixture(f, f.TempDir())
	f.Cleanup(func() { fx.close(f) })
	f.Fuzz(func(t *testing.T, body, ns, key string) {
		req, err := http.NewRequest("POST", "http://"+fx.srv.Addr()+"/v1/memory/"+ns, strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Skip() // a header or URL the client refuses to send
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		switch {
		case resp.StatusCode == 200 || resp.StatusCode == 201:
			var res struct{ Record struct{ ID string } }
			if json.Unmarshal(b, &res) != nil || res.Record.ID == "" {
				t.Errorf("%d without a record: %q", resp.StatusCode, b)
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal(b, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Errorf("%d with a body that is not a JSON error: %q", resp.StatusCode, b)
			}
		default:
			t.Errorf("status %d for %q into %q: %s", resp.StatusCode, body, ns, b)
		}
	})
}
