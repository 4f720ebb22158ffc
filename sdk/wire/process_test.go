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
