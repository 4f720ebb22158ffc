package operator_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/depai/depai/agent/operator"
)

// TestClientBadServer points the client at an in-test HTTP server (real
// HTTP on loopback) that answers with broken streams and bodies, as a
// proxy, a crash or another program on the port might.
func TestClientBadServer(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		ctype   string
		body    string
		wantErr string
	}{
		{"not a stream", 200, "application/json", `{"reply":{}}`, `got Content-Type "application/json", want text/event-stream`},
		{"cut before the reply", 200, "text/event-stream", "event: delta\ndata: {\"type\":\"delta\",\"text\":\"a\"}\n\n", "the stream ended before the reply: unexpected EOF"},
		{"cut mid event", 200, "text/event-stream", "event: reply\ndata: {\"type\":\"re", "the stream ended before the reply: unexpected EOF"},
		{"garbage event data", 200, "text/event-stream", "event: reply\ndata: not json\n\n", "malformed reply event"},
		{"garbage error event", 200, "text/event-stream", "event: error\ndata: {\n\n", "malformed error event"},
		{"non-JSON error body", 502, "text/html", "<h1>Bad Gateway</h1>", "502 Bad Gateway: <h1>Bad Gateway</h1>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			var last error
			n := 0
			for _, err := range operator.NewClient(srv.URL, "t").Send(t.Context(), "a", "hi") {
				n++
				last = err
			}
			if last == nil || !strings.Contains(last.Error(), tt.wantErr) {
				t.Errorf("after %d events, error %v; want one containing %q", n, last, tt.wantErr)
			}
		})
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := operator.NewClient(srv.URL, "t").Agents(t.Context())
	var oe *operator.Error
	if !errors.As(err, &oe) || oe.Status != 503 {
		t.Errorf("Agents against a 503: %v", err)
	}
}
