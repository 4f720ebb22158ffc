package live

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/depai/depai/sdk/wire"
)

func TestSlot(t *testing.T) {
	var s Slot[int]
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("empty slot: %v; want unavailable", err)
	}

	run1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan struct{})
	go func() { s.Hold(run1, 1, nil); close(done1) }()
	if v, err := s.Get(context.Background()); v != 1 || err != nil {
		t.Fatalf("Get = %d, %v; want 1 (Get waits for the hook)", v, err)
	}
	// A second load's hook replaces the first; the first ending leaves it.
	run2, stop2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	bad := errors.New("bad config")
	go func() { s.Hold(run2, 0, bad); close(done2) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := s.Get(context.Background()); err == bad {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second hold never showed")
		}
	}
	stop1()
	<-done1
	if _, err := s.Get(context.Background()); err != bad {
		t.Fatalf("after the first hook ended: %v; want the second's error", err)
	}
	stop2()
	<-done2
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("after every hook ended: %v; want unavailable", err)
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}
