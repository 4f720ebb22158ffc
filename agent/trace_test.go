package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/llm"
	"github.com/depai/depai/agent/llm/llmtest"
)

// otlpReceiver is an in-test OTLP/HTTP trace receiver: it decodes the real
// protobuf export requests an OpenTelemetry exporter sends.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string]map[string]string // span name → attributes
	trace map[string]string            // span name → trace id
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ex collectortrace.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &ex) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range ex.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range sp.Attributes {
					v := kv.Value.GetStringValue()
					if v == "" {
						v = fmt.Sprint(kv.Value.GetIntValue())
					}
					attrs[kv.Key] = v
				}
				r.spans[sp.Name] = attrs
				r.trace[sp.Name] = fmt.Sprintf("%x", sp.TraceId)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

func TestTraces(t *testing.T) {
	rcv := &otlpReceiver{spans: map[string]map[string]string{}, trace: map[string]string{}}
	otlp := httptest.NewServer(rcv)
	defer otlp.Close()
	exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL(otlp.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	srv := llmtest.NewServer(t,
		llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "m", Name: "memory.put", Arguments: `{"text":"traced"}`}}},
		llmtest.Reply{Text: "stored"},
	)
	f, err := openWith(t, fmt.Sprintf("name: scout\nmodel: {base_url: %q, model: test-model}\n", srv.URL), agent.Options{Tracer: tp})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Agent("scout")
	evs := collect(t, a, "remember this")
	final := evs[len(evs)-1]
	if err := tp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for name, want := range map[string]map[string]string{
		"invoke_agent scout":      {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "scout"},
		"chat test-model":         {"gen_ai.operation.name": "chat", "gen_ai.request.model": "test-model"},
		"execute_tool memory.put": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "memory.put"},
	} {
		got := rcv.spans[name]
		if got == nil {
			t.Errorf("no span %q; got %v", name, rcv.spans)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("span %q: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
	if final.TraceID == "" || rcv.trace["invoke_agent scout"] != final.TraceID {
		t.Errorf("reply trace id %q, span's %q", final.TraceID, rcv.trace["invoke_agent scout"])
	}
	// The audit record of the tool call carries the same trace.
	audit := reply(collect(t, a, "/audit 5"))
	var recs []struct {
		Data json.RawMessage `json:"data"`
	}
	for ev, err := range a.Handle(t.Context(), agent.Input{Text: "/audit 5"}) {
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(ev.Data, &recs)
	}
	found := false
	for _, r := range recs {
		found = found || strings.Contains(string(r.Data), `"trace_id":"`+final.TraceID+`"`)
	}
	if !found {
		t.Errorf("no audit record carries trace %s:\n%s", final.TraceID, audit)
	}
}
