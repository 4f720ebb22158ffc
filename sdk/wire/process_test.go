package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var b []byte
	b = AppendFrame(b, FrameCall, 7, []byte(`{"method":"x"}`))
	b = AppendFrame(b, FrameCancel, 8, nil)
	b = AppendFrame(b, FrameResult, 9, bytes.Repeat([]byte("y"), 100))
	b = AppendFrame(b, FrameResult, 10, []byte(`{}`))
	r := bytes.NewReader(b)
	want := []struct {
		kind byte
		id   uint64
		body string
		err  error
	}{
		{FrameCall, 7, `{"method":"x"}`, nil},
		{FrameCancel, 8, "", nil},
		{FrameResult, 9, "", ErrFrameTooLarge}, // skipped, stream stays in sync
		{FrameResult, 10, `{}`, nil},
	}
	for _, w := range want {
		kind, id, body, err := ReadFrame(r, 50)
		if kind != w.kind || id != w.id || string(body) != w.body || !errors.Is(err, w.err) {
			t.Fatalf("ReadFrame = %d %d %q %v; want %d %d %q %v", kind, id, body, err, w.kind, w.id, w.body, w.err)
		}
	}
	if _, _, _, err := ReadFrame(r, 50); err == nil {
		t.Fatal("no error at end of stream")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, FrameCall, 1, []byte(`{"method":"echo"}`)))
	f.Add(AppendFrame(nil, FrameCancel, 2, nil))
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 8 {
			at := len(data) - r.Len()
			kind, id, body, err := ReadFrame(r, 1<<10)
			if err != nil && !errors.Is(err, ErrFrameTooLarge) {
				return
			}
			if len(body) > 1<<10 {
				t.Fatalf("body of %d bytes over the limit", len(body))
			}
			// A frame read, or skipped as too large, is exactly the bytes
			// it consumed: the stream stays in sync.
			read := data[at : len(data)-r.Len()]
			if err == nil && !bytes.Equal(AppendFrame(nil, kind, id, body), read) {
				t.Fatalf("frame %d %d %q re-encodes differently from the %x it was read from", kind, id, body, read)
			}
			if err != nil && (len(read) <= 13+1<<10 || !bytes.Equal(AppendFrame(nil, kind, id, nil)[4:], read[4:13])) {
				t.Fatalf("skipped frame %d %d: consumed %x", kind, id, read[:min(len(read), 13)])
			}
		}
	})
}

func TestCallAndResultBodies(t *testing.T) {
	c := Call{Method: "gnss.fix", Payload: []byte(`{"q":1}`), CallID: "c-7", Deadline: 1234567890123, Checked: true}
	got, err := ParseCallBody(AppendCallBody(nil, c))
	if err != nil || got.Method != c.Method || got.CallID != c.CallID || got.Deadline != c.Deadline || !got.Checked || string(got.Payload) != string(c.Payload) {
		t.Fatalf("call round trip = %+v, %v; want %+v", got, err, c)
	}
	if got, err := ParseCallBody(AppendCallBody(nil, Call{Method: "m"})); err != nil || got.Payload != nil || got.Checked {
		t.Fatalf("call with no payload = %+v, %v", got, err)
	}
	for _, r := range []Result{
		{Payload: []byte(`{"ok":true}`)},
		{},
		{Error: &Error{Code: CodeTimeout, Message: "slow: 3s", Retryable: true}},
		{Error: &Error{Code: CodeInternal}},
	} {
		got, err := ParseResultBody(AppendResultBody(nil, r))
		if err != nil || string(got.Payload) != string(r.Payload) || (got.Error == nil) != (r.Error == nil) || (r.Error != nil && *got.Error != *r.Error) {
			t.Fatalf("result round trip of %+v = %+v, %v", r, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1}, {1, 0, 0, 9, 'x'}} {
		if _, err := ParseResultBody(bad); err == nil {
			t.Errorf("ParseResultBody(%x) accepted", bad)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), append(make([]byte, 9), 0, 5, 'a')} {
		if _, err := ParseCallBody(bad); err == nil {
			t.Errorf("ParseCallBody(%x) accepted", bad)
		}
	}
}

// FuzzParseBodies: whatever a body holds, parsing it does not panic, and
// what parses re-encodes to the same bytes.
func FuzzParseBodies(f *testing.F) {
	f.Add(AppendCallBody(nil, Call{Method: "echo", Payload: []byte(`"x"`), CallID: "1", Deadline: 5}))
	f.Add(AppendResultBody(nil, Result{Payload: []byte(`{}`)}))
	f.Add(AppendResultBody(nil, Result{Error: &Error{Code: "timeout", Message: "m", Retryable: true}}))
	f.Add([]byte{1, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCallBody(b); err == nil {
			// Only the flags byte's unused bits may differ.
			re := AppendCallBody(nil, c)
			if len(re) != len(b) || !bytes.Equal(re[:8], b[:8]) || !bytes.Equal(re[9:], b[9:]) {
				t.Fatalf("call %+v re-encodes as %x, read from %x", c, re, b)
			}
		}
		if r, err := ParseResultBody(b); err == nil {
			re := AppendResultBody(nil, r)
			if r.Error == nil && !bytes.Equal(re, b) {
				t.Fatalf("result %+v re-encodes as %x, read from %x", r, re, b)
			}
			if r.Error != nil && (len(re) != len(b) || !bytes.Equal(re[2:], b[2:])) {
				t.Fatalf("error result %+v re-encodes as %x, read from %x", r, re, b)
			}
		}
	})
}
