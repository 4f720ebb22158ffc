package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func record(t testing.TB, chunks ...string) []byte {
	var buf bytes.Buffer
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w, err := NewWriter(&buf, Meta{Protocol: "nmea", Source: "test", Started: start})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		if err := w.Write(start.Add(time.Duration(i)*100*time.Millisecond), []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestRoundTripAndTee(t *testing.T) {
	var buf bytes.Buffer
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w, err := NewWriter(&buf, Meta{Protocol: "rtcm3", Started: start})
	if err != nil {
		t.Fatal(err)
	}
	clock := start
	tr := Tee(strings.NewReader("hello, recorded world"), w, func() time.Time { clock = clock.Add(time.Second); return clock })
	got, err := io.ReadAll(io.LimitReader(tr, 100))
	if err != nil || string(got) != "hello, recorded world" || tr.Err() != nil {
		t.Fatalf("tee read %q, %v, %v", got, err, tr.Err())
	}
	meta, chunks, err := Open(bytes.NewReader(buf.Bytes()))
	if err != nil || meta.Protocol != "rtcm3" || !meta.Started.Equal(start) {
		t.Fatalf("meta %+v, %v", meta, err)
	}
	var all []byte
	var last time.Time
	for c, err := range chunks {
		if err != nil {
			t.Fatal(err)
		}
		if !c.At.After(last) {
			t.Fatalf("chunk at %v not after %v", c.At, last)
		}
		last = c.At
		all = append(all, c.Data...)
	}
	if string(all) != "hello, recorded world" || !last.After(start) {
		t.Fatalf("replayed %q, last %v", all, last)
	}
}

func TestDamage(t *testing.T) {
	rec := record(t, "one", "two", "three")
	cases := map[string][]byte{
		"truncated": rec[:len(rec)-2],
		"crc":       append(bytes.Clone(rec[:len(rec)-6]), 'X', rec[len(rec)-5], rec[len(rec)-4], rec[len(rec)-3], rec[len(rec)-2], rec[len(rec)-1]),
	}
	for name, data := range cases {
		_, chunks, err := Open(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var good []string
		var cerr *CorruptError
		for c, err := range chunks {
			if err != nil {
				cerr, _ = errors.AsType[*CorruptError](err)
				break
			}
			good = append(good, string(c.Data))
		}
		if strings.Join(good, ",") != "one,two" || cerr == nil || cerr.Chunk != 2 {
			t.Errorf("%s: good %v, err %v; want one,two then chunk 2 refused", name, good, cerr)
		}
	}
	if _, _, err := Open(strings.NewReader("$GPGGA,...")); err == nil {
		t.Error("an NMEA log opened as a recording")
	}
}

func TestPlay(t *testing.T) {
	rec := record(t, "a", "b", "c") // 0, 100 ms, 200 ms
	_, chunks, _ := Open(bytes.NewReader(rec))
	start := time.Now()
	got, err := io.ReadAll(Play(context.Background(), chunks, 2)) // 200 ms at twice the speed
	if err != nil || string(got) != "abc" {
		t.Fatalf("play = %q, %v", got, err)
	}
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("played 200 ms at speed 2 in %v; pacing ignored", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, chunks, _ = Open(bytes.NewReader(record(t, "a", "b")))
	if _, err := io.ReadAll(Play(ctx, chunks, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled play: %v", err)
	}
}

// FuzzOpen: no file panics the reader or makes it allocate past MaxChunk.
func FuzzOpen(f *testing.F) {
	f.Add(record(f, "one", "two"))
	f.Add([]byte(Magic + `{"protocol":"x","started":"2026-12-01T12:00:00Z"}` + "\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, chunks, err := Open(bytes.NewReader(data))
		if err != nil {
			return
		}
		for c, err := range chunks {
			if err != nil {
				break
			}
			if len(c.Data) > MaxChunk {
				t.Fatalf("chunk of %d bytes", len(c.Data))
			}
		}
	})
}
