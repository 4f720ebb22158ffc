package memory

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzParseRecordJSON: whatever bytes it is given, the fast decoder
// either declines or decodes exactly what json.Unmarshal decodes into a
// zero Record — every record read from badger goes through it. A record the
// fast encoder writes is always taken by the fast decoder.
func FuzzParseRecordJSON(f *testing.F) {
	f.Add([]byte(`{"id":"01J0000000000000000000000","seq":7,"namespace":"agent/peer","kind":"turn","author":"peer","time":"2026-12-02T04:03:13.123456789Z","recorded":"2026-12-02T04:03:13.2Z","text":"echo hi","data":{"in":"hi","calls":[{"t":"aecho.echo","r":"{\"e\":1}"}]},"tags":["turn:1","source:op","ended:reply","depth:0"],"key":"k","expires_at":"2027-01-01T00:00:00Z","valid_to":"2027-01-02T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","seq":0,"namespace":"","kind":"","time":"0001-01-01T00:00:00Z","recorded":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","seq":1,"namespace":"a","kind":"fact","time":"2026-12-02T04:03:13+02:00","recorded":"2026-12-02T04:03:13Z","data":"s,}]","tags":["a"]}`))
	f.Add([]byte(`{"id":"x","seq":01,"namespace":"a","kind":"fact","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z","data":[1,2}`))
	f.Add([]byte(`{"id":"x","seq":1,"namespace":"a","kind":"fact","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z","data":12,"tags":[]}`))
	f.Add([]byte(`{"id":"x\u0041","seq":1,"namespace":"ü","kind":"fact","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z","data":null}`))
	f.Add([]byte(`{"id":"x","seq":2,"namespace":"a","kind":"note","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z","tags":["1","2","3","4","5","6","7","8","9","10"]}`))
	f.Add([]byte(`{"id":"a\"\\\/\b\f\n\r\t\u00e9\u003c\u2028\ud800","seq":2,"namespace":"é","kind":"note","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z","text":"\u0000"}`))
	f.Fuzz(func(t *testing.T, meta []byte) {
		got, ok := parseRecordJSON(meta)
		if !ok {
			return
		}
		var want Record
		if err := json.Unmarshal(meta, &want); err != nil {
			t.Fatalf("parseRecordJSON took %s, which json.Unmarshal refuses: %v", meta, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseRecordJSON(%s)\n= %#v\njson.Unmarshal\n= %#v", meta, got, want)
		}
		enc, ok := appendRecordJSON(nil, &got)
		if !ok {
			return
		}
		again, ok := parseRecordJSON(enc)
		if !ok || !reflect.DeepEqual(again, got) {
			t.Fatalf("the fast encoder's %s is not read back by the fast decoder: ok=%v %#v", enc, ok, again)
		}
	})
}

// TestParseRecordJSONTakesWhatTheStoreWrites: a record as the store writes
// it (a turn's text has a newline, which is escaped) is decoded without
// encoding/json, in three allocations.
func TestParseRecordJSONTakesWhatTheStoreWrites(t *testing.T) {
	at := time.Date(2026, 12, 2, 4, 3, 13, 123456789, time.UTC)
	r := Record{ID: "01J0000000000000000000000", Seq: 9, Namespace: "agent/peer", Kind: KindTurn, Author: "peer", Time: at, Recorded: at,
		Text: "echo hi\n<b> & \"é\" \u2028 \x01", Data: json.RawMessage(`{"in":"hi","n":[1,2,{"x":"}"}]}`), Tags: []string{"turn:1", "source:op", "ended:reply", "depth:0"}, Key: "k", ExpiresAt: at.Add(time.Hour)}
	meta, ok := appendRecordJSON(nil, &r)
	if !ok {
		t.Fatal("the fast encoder declined the record")
	}
	got, ok := parseRecordJSON(meta)
	if !ok || !reflect.DeepEqual(got, r) {
		t.Fatalf("parseRecordJSON = %v, %#v; want %#v", ok, got, r)
	}
	// The fewest of a few counts: under -race sync.Pool drops what it is
	// given at random (json.Valid's scanner then allocates), and the counter
	// is the whole process's.
	n := testing.AllocsPerRun(100, func() { parseRecordJSON(meta) })
	for range 4 {
		n = min(n, testing.AllocsPerRun(100, func() { parseRecordJSON(meta) }))
	}
	if n > 3 {
		t.Fatalf("%v allocations a record, want at most 3 (its strings, tags and data)", n)
	}
	for _, bad := range []string{
		`{"seq":9,"id":"x","namespace":"a","kind":"turn","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z"}`,                           // another order
		`{"id":"x\ud83d\ude00","seq":9,"namespace":"a","kind":"turn","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z"}`,               // a surrogate pair
		"{\"id\":\"x\xff\",\"seq\":9,\"namespace\":\"a\",\"kind\":\"turn\",\"time\":\"2026-12-02T04:03:13Z\",\"recorded\":\"2026-12-02T04:03:13Z\"}", // invalid UTF-8
		`{"id":"x","seq":9,"namespace":"a","kind":"turn","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z","data":{"a"}}`,              // invalid data
		`{"id":"x","seq":9,"namespace":"a","kind":"turn","time":"2026-12-02T04:03:13Z","recorded":"2026-12-02T04:03:13Z"} `,                          // trailing space
	} {
		if _, ok := parseRecordJSON([]byte(bad)); ok {
			t.Errorf("parseRecordJSON took %s", bad)
		}
	}
}
