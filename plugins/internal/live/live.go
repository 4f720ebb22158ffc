// Package live hands what a plugin's run hook (sdk.Run) started — a
// receiver's reader, an NTRIP session, a broker client — to the plugin's
// tool and sensor handlers, which run on other goroutines.
//
// It is for process plugins, where the run hook and the calls share the
// process's memory. (On WASM the run hook has an instance of its own and
// shares nothing with the calls; there it reaches them through the host.)
package live

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

// DefaultWait is how long Get waits for a run hook that has not yet
// started: the host starts it right after the load, so a call that comes
// first waits a moment instead of failing.
const DefaultWait = 5 * time.Second

// Slot holds the value (or the error, a refused config) of the one running
// run hook. The zero Slot is empty and ready to use.
type Slot[T any] struct {
	mu    sync.Mutex
	cur   *held[T]
	ready chan struct{} // closed while cur is set; replaced when cleared
}

type held[T any] struct {
	v   T
	err error
}

func (s *Slot[T]) readyLocked() chan struct{} {
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	return s.ready
}

// Hold makes v (or err) what Get returns until ctx ends, then empties the
// slot. It blocks, so it is the end of a run hook: start the reader, then
// Hold what handlers need. A later Hold replaces an earlier one, and only
// the latest empties the slot — in a test binary several loads of one
// plugin share its globals.
func (s *Slot[T]) Hold(ctx context.Context, v T, err error) {
	h := &held[T]{v: v, err: err}
	s.mu.Lock()
	s.cur = h
	ready := s.readyLocked()
	select {
	case <-ready:
	default:
		close(ready)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == h {
		s.cur, s.ready = nil, nil
	}
}

// Get returns what the run hook holds, waiting up to DefaultWait (or ctx's
// end, if sooner) for one to start.
func (s *Slot[T]) Get(ctx context.Context) (T, error) {
	s.mu.Lock()
	h, ready := s.cur, s.readyLocked()
	s.mu.Unlock()
	if h == nil {
		t := time.NewTimer(DefaultWait)
		defer t.Stop()
		select {
		case <-ready:
		case <-ctx.Done():
		case <-t.C:
		}
		s.mu.Lock()
		h = s.cur
		s.mu.Unlock()
	}
	if h == nil {
		var zero T
		return zero, &wire.Error{Code: wire.CodeUnavailable, Message: "the plugin's run hook has not started (is the plugin loaded by a host that runs sdk.Run?)", Retryable: true}
	}
	return h.v, h.err
}

// Run is a run hook's whole body for the common case: start builds what
// the handlers use from the config it reads with ctx (the host is in it),
// and the result is held until the plugin is unloaded. A start error — a
// refused config — is logged and held, so every call reports it.
func Run[T any](s *Slot[T], name string, start func(ctx context.Context) (T, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		v, err := start(ctx)
		if err != nil {
			sdk.Log(ctx, slog.LevelWarn, name+": not started", "err", err.Error())
		}
		s.Hold(ctx, v, err)
		return nil
	}
}
