package memory_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/depai/depai/memory"
)

func TestScoped(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{})
	defer db.Close()
	seed := []memory.Record{
		{Namespace: "agent/robot-1", Kind: memory.KindObservation, Text: "r1"},
		{Namespace: "agent/robot-10", Kind: memory.KindObservation, Text: "r10"},
		{Namespace: "fleet/site-a", Kind: memory.KindObservation, Text: "site-a"},
		{Namespace: "fleet/site-b", Kind: memory.KindObservation, Text: "site-b"},
		{Namespace: "shared", Kind: memory.KindMessage, Text: "shared"},
	}
	stored, err := db.Put(ctx, seed...)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var denied []memory.Denial
	robot, err := memory.Scoped(db, memory.Grants{
		Principal: "robot-1",
		Read:      []string{"agent/robot-1", "fleet/site-a", "shared"},
		Write:     []string{"agent/robot-1"},
		OnDenied: func(_ context.Context, d memory.Denial) {
			mu.Lock()
			defer mu.Unlock()
			denied = append(denied, d)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	query := func(q memory.Query) (string, error) {
		var got []string
		for rec, err := range robot.Query(ctx, q) {
			if err != nil {
				return "", err
			}
			got = append(got, rec.Text)
		}
		return strings.Join(got, ","), nil
	}

	t.Run("reads", func(t *testing.T) {
		tests := []struct {
			q    memory.Query
			want string
		}{
			{memory.Query{Namespace: "agent/robot-1"}, "r1"},
			{memory.Query{}, "shared,site-a,r1"},                   // every grant, merged newest first
			{memory.Query{Ascending: true, Limit: 2}, "r1,site-a"}, // limit after the merge
			{memory.Query{Namespace: "fleet"}, "site-a"},           // narrowed to the granted part
			{memory.Query{Namespace: "agent"}, "r1"},               // robot-10 is not robot-1
		}
		for _, tt := range tests {
			got, err := query(tt.q)
			if err != nil || got != tt.want {
				t.Errorf("Query(%+v) = %q, %v; want %q", tt.q, got, err, tt.want)
			}
		}
	})

	denials := func() int {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range denied {
			if d.Principal != "robot-1" || d.Reason == "" {
				t.Errorf("denial %+v", d)
			}
		}
		return len(denied)
	}

	tests := []struct {
		name string
		do   func() error
	}{
		{"read sibling with a common prefix", func() error { _, err := query(memory.Query{Namespace: "agent/robot-10"}); return err }},
		{"read ungranted", func() error { _, err := query(memory.Query{Namespace: "fleet/site-b"}); return err }},
		{"get ungranted", func() error { _, err := robot.Get(ctx, stored[1].ID); return err }},
		{"write read-only", func() error {
			_, err := robot.Put(ctx, memory.Record{Namespace: "shared", Kind: memory.KindMessage, Text: "x"})
			return err
		}},
		{"write sibling", func() error {
			_, err := robot.Put(ctx, memory.Record{Namespace: "agent/robot-10", Kind: memory.KindMessage, Text: "x"})
			return err
		}},
		{"write an audit record (a forgery) in a granted namespace", func() error {
			_, err := robot.Put(ctx, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindAudit, Text: "estop.release fleet"})
			return err
		}},
		{"fact ungranted", func() error { _, err := robot.Fact(ctx, "fleet/site-b", "k"); return err }},
		{"watch ungranted", func() error {
			for _, err := range robot.Watch(ctx, memory.Query{Namespace: "agent/robot-10"}) {
				return err
			}
			return nil
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, memory.ErrDenied) {
				t.Fatalf("got %v, want ErrDenied", err)
			}
			if !strings.Contains(err.Error(), "robot-1") {
				t.Errorf("error %q does not name the principal", err)
			}
			if n := denials(); n != i+1 {
				t.Errorf("%d denials reported, want %d", n, i+1)
			}
		})
	}

	t.Run("allowed write", func(t *testing.T) {
		recs, err := robot.Put(ctx, memory.Record{Namespace: "agent/robot-1/arm", Kind: memory.KindReading, Text: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Author != "robot-1" {
			t.Errorf("Author = %q, want the principal", recs[0].Author)
		}
	})

	t.Run("bad grants", func(t *testing.T) {
		if _, err := memory.Scoped(db, memory.Grants{Principal: "p", Read: []string{"fleet/"}}); !errors.Is(err, memory.ErrInvalid) {
			t.Errorf("grant \"fleet/\": %v, want ErrInvalid", err)
		}
		if _, err := memory.Scoped(db, memory.Grants{Read: []string{"fleet"}}); !errors.Is(err, memory.ErrInvalid) {
			t.Errorf("no principal: %v, want ErrInvalid", err)
		}
	})
}

// TestWatchWakesAgent is the robot → digital agent path: a robot's
// observation, written through its grants, wakes a dispatcher that watches
// the fleet namespaces it was granted.
func TestWatchWakesAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openDB(t, memory.Config{})
	defer db.Close()
	robot, _ := memory.Scoped(db, memory.Grants{Principal: "robot-1", Read: []string{"agent/robot-1"}, Write: []string{"agent/robot-1"}})
	dispatcher, _ := memory.Scoped(db, memory.Grants{Principal: "dispatcher", Read: []string{"agent/robot-1", "agent/robot-2"}, Write: []string{"fleet"}})
	woke := make(chan memory.Record, 1)
	ready := make(chan struct{})
	go func() {
		from := dispatcher.LastSeq()
		close(ready)
		for rec, err := range dispatcher.Watch(ctx, memory.Query{Kinds: []memory.Kind{memory.KindObservation}, AfterSeq: from}) {
			if err != nil {
				return
			}
			woke <- rec
			return
		}
	}()
	<-ready
	if _, err := db.Put(ctx, memory.Record{Namespace: "agent/robot-3", Kind: memory.KindObservation, Text: "not granted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := robot.Put(ctx, memory.Record{Namespace: "agent/robot-1", Kind: memory.KindObservation, Text: "obstacle at aisle 3"}); err != nil {
		t.Fatal(err)
	}
	rec := <-woke
	if rec.Text != "obstacle at aisle 3" || rec.Author != "robot-1" {
		t.Errorf("dispatcher woke on %+v", rec)
	}
}

// A scoped PutOnce checks the grants like Put, and its keys are the
// principal's own.
func TestScopedPutOnce(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, memory.Config{})
	defer db.Close()
	scoped := func(who string) *memory.ScopedStore {
		s, err := memory.Scoped(db, memory.Grants{Principal: who, Read: []string{"fleet"}, Write: []string{"fleet"}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := scoped("a"), scoped("b")
	rec := memory.Record{Namespace: "fleet", Kind: memory.KindObservation, Text: "pallet 17"}
	first, ok, err := a.PutOnce(ctx, "k1", rec)
	if err != nil || !ok || first[0].Author != "a" {
		t.Fatalf("first PutOnce = %v, %v, %v", first, ok, err)
	}
	again, ok, err := a.PutOnce(ctx, "k1", rec)
	if err != nil || ok || again[0].ID != first[0].ID {
		t.Fatalf("retry = %v, %v, %v; want the first record, not first", again, ok, err)
	}
	other, ok, err := b.PutOnce(ctx, "k1", rec)
	if err != nil || !ok || other[0].ID == first[0].ID {
		t.Fatalf("b's PutOnce with a's key = %v, %v, %v; want a record of its own", other, ok, err)
	}
	// A principal's name may hold the separator: principal "a" with key
	// "b/k" and principal "a/b" with key "k" are still two keys.
	ab := scoped("a/b")
	if _, ok, err := a.PutOnce(ctx, "b/k", rec); err != nil || !ok {
		t.Fatalf("a's PutOnce b/k = %v, %v", ok, err)
	}
	if _, ok, err := ab.PutOnce(ctx, "k", rec); err != nil || !ok {
		t.Fatalf("a/b's PutOnce k = %v, %v; want a record of its own, not a's for b/k", ok, err)
	}
	if _, _, err := a.PutOnce(ctx, "k2", memory.Record{Namespace: "agent/x", Kind: memory.KindObservation}); !errors.Is(err, memory.ErrDenied) {
		t.Errorf("PutOnce outside the grants = %v, want ErrDenied", err)
	}
	if _, _, err := a.PutOnce(ctx, "k3", memory.Record{Namespace: "fleet", Kind: memory.KindAudit}); !errors.Is(err, memory.ErrDenied) {
		t.Errorf("PutOnce of kind audit = %v, want ErrDenied", err)
	}
	n := 0
	for _, err := range db.Query(ctx, memory.Query{Namespace: "fleet"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d records stored, want 4 (a's k1 once, b's k1, a's b/k, a/b's k)", n)
	}
}
