package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadEvents(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []Event
		err    error // error after the events
	}{
		{"one", "event: delta\ndata: {\"a\":1}\n\n", []Event{{Type: "delta", Data: `{"a":1}`}}, io.EOF},
		{"default type", "data: x\n\n", []Event{{Type: "message", Data: "x"}}, io.EOF},
		{"crlf", "event: reply\r\ndata: x\r\n\r\n", []Event{{Type: "reply", Data: "x"}}, io.EOF},
		{"multi data", "data: a\ndata: b\n\n", []Event{{Type: "message", Data: "a\nb"}}, io.EOF},
		{"no space", "event:x\ndata:y\n\n", []Event{{Type: "x", Data: "y"}}, io.EOF},
		{"comments and id", ": ping\nid: 7\ndata: z\n\n", []Event{{Type: "message", ID: "7", Data: "z"}}, io.EOF},
		{"no data dispatches nothing", "event: a\n\ndata: b\n\n", []Event{{Type: "message", Data: "b"}}, io.EOF},
		{"unknown field ignored", "foo: bar\ndata: c\n\n", []Event{{Type: "message", Data: "c"}}, io.EOF},
		{"two", "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", []Event{{Type: "a", Data: "1"}, {Type: "b", Data: "2"}}, io.EOF},
		{"cut mid event", "event: a\ndata: 1\n", nil, io.ErrUnexpectedEOF},
		{"cut mid line", "event: a\ndata: 1", nil, io.ErrUnexpectedEOF},
		{"empty", "", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.stream), 1<<10)
			var got []Event
			var err error
			for {
				var ev Event
				ev, err = r.Next()
				if err != nil {
					break
				}
				got = append(got, ev)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("events = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReadTooLong(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, stream := range []string{
		"data: " + long + "\n\n",                               // one long line
		"data: " + long[:40] + "\ndata: " + long[:40] + "\n\n", // long event from short lines
		"event: " + strings.Repeat("y", 5000) + "\n",           // longer than the bufio buffer
	} {
		r := NewReader(strings.NewReader(stream), 64)
		if _, err := r.Next(); !errors.Is(err, ErrTooLong) {
			t.Errorf("Next(%.20q…) err = %v, want ErrTooLong", stream, err)
		}
	}
}

func TestWriteRejectsLineBreakInType(t *testing.T) {
	if err := Write(io.Discard, "a\nb", nil); err == nil {
		t.Fatal("Write accepted an event type with a line break")
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "x", `{"type":"delta","text":"hi"}`, "a\nb", "\n", "a\n\nb\n", ":colon", "data: nested\n\n"} {
		f.Add("delta", s)
	}
	f.Fuzz(func(t *testing.T, typ, data string) {
		if strings.ContainsAny(typ, "\r\n") || typ == "" || strings.Contains(data, "\r") {
			t.Skip()
		}
		var b bytes.Buffer
		if err := Write(&b, typ, []byte(data)); err != nil {
			t.Fatal(err)
		}
		ev, err := NewReader(&b, 1<<20).Next()
		if err != nil {
			t.Fatalf("Next: %v (stream %q)", err, b.String())
		}
		if ev.Type != typ {
			t.Errorf("type = %q, want %q", ev.Type, typ)
		}
		if ev.Data != data {
			t.Errorf("data = %q, want %q", ev.Data, data)
		}
	})
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{"event: a\ndata: b\n\n", ": c\r\n\r\n", "data", "data:\n\n\n", "id: \x00\ndata: x\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream string) {
		r := NewReader(strings.NewReader(stream), 256)
		for range 1000 {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if len(ev.Data) > 256 {
				t.Fatalf("data of %d bytes passed a 256-byte limit", len(ev.Data))
			}
		}
		t.Fatal("more than 1000 events from a short stream")
	})
}
