package llm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeChunk holds decodeChunk to json.Unmarshal: whatever it decodes
// (it may give up, and then encoding/json decodes) equals what
// json.Unmarshal makes of the same valid JSON.
func FuzzDecodeChunk(f *testing.F) {
	for _, s := range []string{
		`{"choices":[{"delta":{"content":"","role":"assistant","tool_calls":[{"function":{"arguments":"{\"text\":\"ping 1\"}","name":"aecho_echo"},"id":"call_1","index":0,"type":"function"}]},"finish_reason":null,"index":0}],"created":1764644000,"id":"chatcmpl-1","model":"scripted","object":"chat.completion.chunk","usage":null}`,
		`{"choices":[{"delta":{},"finish_reason":"tool_calls","index":0}],"created":1,"id":"c","model":"m","object":"chat.completion.chunk","usage":{"completion_tokens":8,"prompt_tokens":20,"total_tokens":28}}`,
		`{"id":"x","choices":[{"index":0,"delta":{"content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \n"},"logprobs":null}],"system_fingerprint":"fp"}`,
		`{"choices":[],"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}}`,
		`{"Choices":[{"Index":1}]}`,
		`{"choices":[{"index":0},{"index":1,"delta":{"content":"b"}}],"choices":null}`,
		`{"choices":[{"index":1.5}]}`,
		`{"choices":[{"index":99999999999999999999}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":null,"function":null,"type":null}]}}]}`,
		`{"choices":null,"usage":{}}`,
		`{"choices":[{"delta":{"content":"\xff"}}]}`,
		`[1,2]`, `"s"`, `{"choices":[{"index":0,}]}`, `{"choices":[{"index":0}]} x`, `{"choices":[{"index":-01}]}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{,"a":1}`, `{"a":1,}`, `{"a" 1}`, `{"a":[1,,2]}`, `{"a":1.}`, `{"a":1e}`, `{"a":"\u12"}`, `{"a":"unterminated`, `{"choices":[`, `{"a":[{"b":{"c":[1,"]",{}]}}],"choices":[{"finish_reason":"stop"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast streamChunk
		if !decodeChunk(data, &fast) {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("decodeChunk took invalid JSON %q", data)
		}
		var want streamChunk
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("decodeChunk took %s, which json.Unmarshal refuses: %v", data, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("decodeChunk(%s) = %+v, json.Unmarshal makes %+v", data, fast, want)
		}
	})
}

// TestDecodeChunkTakesTheUsualChunks: the chunks llmtest and the peers'
// server send are decoded here, not by encoding/json.
func TestDecodeChunkTakesTheUsualChunks(t *testing.T) {
	for _, s := range []string{
		`{"choices":[{"delta":{"content":"","role":"assistant","tool_calls":[{"function":{"arguments":"{\"text\":\"ping 1\"}","name":"aecho_echo"},"id":"call_1","index":0,"type":"function"}]},"finish_reason":null,"index":0}],"created":1764644000,"id":"chatcmpl-1","model":"scripted","object":"chat.completion.chunk","usage":null}`,
		`{"choices":[{"delta":{},"finish_reason":"tool_calls","index":0}],"created":1,"id":"c","model":"m","object":"chat.completion.chunk","usage":{"completion_tokens":8,"prompt_tokens":20,"total_tokens":28}}`,
		`{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","service_tier":"default","choices":[{"index":0,"delta":{"content":"caf\u00e9 \"q\"\n"},"logprobs":null,"finish_reason":null}],"obfuscation":"abc"}`,
	} {
		var c streamChunk
		if !decodeChunk([]byte(s), &c) {
			t.Errorf("decodeChunk gave up on %s", s)
		}
	}
}
