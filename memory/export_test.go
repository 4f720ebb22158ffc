package memory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

func exportAll(t *testing.T, s memory.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := memory.Export(context.Background(), s, &buf, memory.Query{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openDB(t, memory.Config{})
	defer src.Close()
	for i := range 30 {
		rec := memory.Record{
			Namespace: fmt.Sprintf("agent/robot-%d", i%3),
			Kind:      memory.KindObservation,
			Author:    "robot",
			Time:      time.Date(2026, 1, 1, 0, 0, i, 123456789, time.UTC),
			Text:      fmt.Sprintf("obs \"%d\" <ü>", i),
			Data:      json.RawMessage(fmt.Sprintf(`{"i":%d,"f":0.1}`, i)),
			Tags:      []string{"t", fmt.Sprint(i % 2)},
			Embedding: &memory.Embedding{Model: "m", Vector: []float32{float32(i) / 3, 1e-7, -0.1}},
		}
		if i%5 == 0 {
			rec.ExpiresAt = time.Now().Add(time.Hour)
		}
		if _, err := src.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := src.Put(ctx, memory.Record{Namespace: "fleet", Kind: memory.KindFact, Key: "dock", Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	a := exportAll(t, src)

	dst := openDB(t, memory.Config{})
	defer dst.Close()
	rep, err := dst.Import(ctx, bytes.NewReader(a), memory.ImportOptions{})
	if err != nil || rep.Imported != 33 || rep.Lines != 33 {
		t.Fatalf("Import = %+v, %v", rep, err)
	}
	if b := exportAll(t, dst); !bytes.Equal(a, b) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", a, b)
	}
	if dst.LastSeq() != src.LastSeq() {
		t.Errorf("LastSeq %d, want %d", dst.LastSeq(), src.LastSeq())
	}
	hist, err := dst.History(ctx, "fleet", "dock")
	if err != nil || len(hist) != 3 || hist[0].ValidTo.IsZero() {
		t.Errorf("History after import = %+v, %v", hist, err)
	}

	t.Run("again is idempotent", func(t *testing.T) {
		rep, err := dst.Import(ctx, bytes.NewReader(a), memory.ImportOptions{})
		if err != nil || rep.Imported != 0 || rep.Duplicates != 33 {
			t.Fatalf("re-import = %+v, %v", rep, err)
		}
	})

	t.Run("into a non-empty store", func(t *testing.T) {
		other := openDB(t, memory.Config{})
		defer other.Close()
		var last uint64
		for range 40 {
			recs, err := other.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "x"})
			if err != nil {
				t.Fatal(err)
			}
			last = recs[0].Seq
		}
		if _, err := other.Import(ctx, bytes.NewReader(a), memory.ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		var got []memory.Record
		for rec, err := range other.Query(ctx, memory.Query{AfterSeq: last, Ascending: true}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rec)
		}
		if len(got) != 33 {
			t.Fatalf("%d imported records after seq %d, want 33", len(got), last)
		}
		var want []memory.Record
		for _, line := range bytes.Split(bytes.TrimSpace(a), []byte("\n")) {
			var r memory.Record
			json.Unmarshal(line, &r)
			want = append(want, r)
		}
		for i := range got {
			if got[i].ID != want[i].ID {
				t.Fatalf("record %d: %s, want %s (file order kept)", i, got[i].ID, want[i].ID)
			}
			// The imported IDs carry Seqs that other records hold here.
			if rec, err := other.Get(ctx, want[i].ID); err != nil || rec.Text != want[i].Text {
				t.Fatalf("Get(imported %s) = %q, %v; want %q", want[i].ID, rec.Text, err, want[i].Text)
			}
		}
	})
}

func TestImportMalformed(t *testing.T) {
	ctx := context.Background()
	src := openDB(t, memory.Config{})
	defer src.Close()
	for i := range 3 {
		if _, err := src.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	good := strings.Split(strings.TrimSpace(string(exportAll(t, src))), "\n")
	file := strings.Join([]string{
		good[0],
		`{"id":`, // 2: truncated JSON
		good[1],
		strings.Replace(good[2], `"kind"`, `"colour":"red","kind"`, 1), // 4: unknown field
		``, // blank lines are skipped
		strings.Replace(good[2], `"shared"`, `"bad//ns"`, 1),                    // 6: bad namespace
		strings.Replace(good[2], good[2][7:33], "01ARZ3NDEKTSV4RRFFQ69G5FA", 1), // 7: short ULID
		good[2] + ` {}`, // 8: trailing data
	}, "\n")
	wantBad := []struct {
		line int
		in   string
	}{{2, "unexpected EOF"}, {4, "colour"}, {6, "bad//ns"}, {7, "ULID"}, {8, "after the record"}}

	check := func(t *testing.T, rep memory.ImportReport, err error) {
		t.Helper()
		if !errors.Is(err, memory.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if len(rep.Bad) != len(wantBad) {
			t.Fatalf("bad lines %v, want %v", rep.Bad, wantBad)
		}
		for i, w := range wantBad {
			if rep.Bad[i].Line != w.line || !strings.Contains(rep.Bad[i].Error(), w.in) {
				t.Errorf("bad[%d] = %v, want line %d mentioning %q", i, rep.Bad[i], w.line, w.in)
			}
		}
	}
	t.Run("all or nothing", func(t *testing.T) {
		dst := openDB(t, memory.Config{})
		defer dst.Close()
		rep, err := dst.Import(ctx, strings.NewReader(file), memory.ImportOptions{AllOrNothing: true})
		check(t, rep, err)
		if rep.Imported != 0 || dst.LastSeq() != 0 {
			t.Errorf("imported %d (LastSeq %d), want nothing", rep.Imported, dst.LastSeq())
		}
	})
	t.Run("good lines", func(t *testing.T) {
		dst := openDB(t, memory.Config{})
		defer dst.Close()
		rep, err := dst.Import(ctx, strings.NewReader(file), memory.ImportOptions{})
		check(t, rep, err)
		if rep.Imported != 2 || rep.Lines != 7 {
			t.Errorf("report %+v, want 2 imported of 7 lines", rep)
		}
	})
	t.Run("line too long", func(t *testing.T) {
		dst := openDB(t, memory.Config{})
		defer dst.Close()
		rep, err := dst.Import(ctx, strings.NewReader(good[0]+"\n"+good[1]), memory.ImportOptions{MaxLineBytes: 50})
		if !errors.Is(err, memory.ErrInvalid) || len(rep.Bad) != 2 || rep.Bad[1].Line != 2 {
			t.Errorf("Import = %+v, %v", rep, err)
		}
	})
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"id":"01KMZ4AT8V2H0S9Q0Y3M4N5P6R","seq":1,"namespace":"shared","kind":"message","time":"2026-01-01T00:00:00Z","recorded":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"01KMZ4AT8V2H0S9Q0Y3M4N5P6R","seq":2,"namespace":"a/b","kind":"fact","key":"k","time":"2026-01-01T00:00:00Z","recorded":"2026-01-01T00:00:00Z","data":{"x":[1,2]},"tags":["t"],"embedding":{"model":"m","vector":[0.5,-1]}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"namespace":"a//b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := memory.ParseLine(b)
		if err != nil {
			if !errors.Is(err, memory.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What parses must survive being written and parsed again.
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := memory.ParseLine(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}
