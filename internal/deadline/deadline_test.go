package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSetEndsEachContextAtItsDeadline(t *testing.T) {
	var s Set
	start := time.Now()
	// Out of order, so the timer has to be re-armed earlier once.
	after := []time.Duration{120 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}
	ctxs := make([]context.Context, len(after))
	for i, d := range after {
		ctx, cancel := s.With(context.Background(), start.Add(d))
		defer cancel()
		ctxs[i] = ctx
		if got, ok := ctx.Deadline(); !ok || !got.Equal(start.Add(d)) {
			t.Fatalf("context %d: Deadline() = %v, %v; want %v", i, got, ok, start.Add(d))
		}
	}
	for i, ctx := range ctxs {
		<-ctx.Done()
		took := time.Since(start)
		if took < after[i] {
			t.Errorf("context %d ended after %v, before its deadline %v", i, took, after[i])
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			t.Errorf("context %d: Err %v, Cause %v; want deadline exceeded", i, ctx.Err(), context.Cause(ctx))
		}
	}
}

func TestSetReleaseAndParents(t *testing.T) {
	var s Set
	ctx, cancel := s.With(context.Background(), time.Now().Add(30*time.Millisecond))
	cancel()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("released: Err = %v; want canceled", ctx.Err())
	}
	if len(s.q) != 0 {
		t.Fatalf("released context still queued: %d", len(s.q))
	}

	parent, pcancel := context.WithCancel(context.Background())
	ctx, cancel = s.With(parent, time.Now().Add(time.Hour))
	defer cancel()
	pcancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("parent canceled: Err = %v", ctx.Err())
	}

	// A parent whose deadline comes first keeps it, and its error.
	early, ecancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer ecancel()
	ctx, cancel = s.With(early, time.Now().Add(time.Hour))
	defer cancel()
	if d, _ := ctx.Deadline(); time.Until(d) > time.Second {
		t.Fatalf("Deadline = %v; want the parent's", d)
	}
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("parent's deadline: Err = %v", ctx.Err())
	}

	// The timer fires with nothing left to do, and a later context still
	// gets its deadline.
	time.Sleep(40 * time.Millisecond)
	ctx, cancel = s.With(context.Background(), time.Now().Add(10*time.Millisecond))
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not ended at its deadline after the timer had fired idle")
	}
}

func BenchmarkWith(b *testing.B) {
	var s Set
	for range b.N {
		_, cancel := s.With(context.Background(), time.Now().Add(time.Minute))
		cancel()
	}
}
