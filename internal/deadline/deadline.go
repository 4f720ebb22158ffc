// Package deadline gives many short-lived contexts their deadlines with one
// runtime timer between them.
//
// context.WithDeadline arms a runtime timer per context. When the timer is
// the earliest one of its P, arming it wakes another scheduler thread to
// watch it (runtime.wakeNetPoller) — for a call that takes tens of
// microseconds, that wake-up is a large part of its cost. Both ends of the
// process-plugin call socket give every call a deadline; with a Set, a call
// whose deadline is later than the one the Set's timer is already armed for
// (the usual case: the same timeout, later start) touches no runtime timer.
package deadline

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Set ends its contexts at their deadlines. The zero value is ready to use.
type Set struct {
	mu    sync.Mutex
	q     queue
	t     *time.Timer
	armed time.Time // when t fires; zero when it is not armed
}

// With returns a copy of parent that ends at d at the latest, and the
// function that releases it, which must be called (as with
// context.WithDeadline). When it ends at d, its Err is
// context.DeadlineExceeded, and so is its context.Cause; contexts derived
// from it see context.Canceled with that cause.
func (s *Set) With(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	if cur, ok := parent.Deadline(); ok && !cur.After(d) {
		return context.WithCancel(parent) // parent's own deadline comes first
	}
	cctx, cancel := context.WithCancelCause(parent)
	e := &entry{at: d, cancel: cancel}
	s.mu.Lock()
	heap.Push(&s.q, e)
	if s.armed.IsZero() || d.Before(s.armed) {
		s.arm(d)
	}
	s.mu.Unlock()
	return &timeoutCtx{Context: cctx, deadline: d}, func() {
		s.mu.Lock()
		if e.index >= 0 {
			heap.Remove(&s.q, e.index)
		}
		s.mu.Unlock()
		cancel(context.Canceled)
	}
}

// arm sets the timer to fire at d. s.mu is held.
func (s *Set) arm(d time.Time) {
	s.armed = d
	if s.t == nil {
		s.t = time.AfterFunc(time.Until(d), s.fire)
		return
	}
	s.t.Reset(time.Until(d))
}

// fire ends every context whose deadline has passed and arms the timer for
// the next one. Contexts released since the timer was armed are gone from
// the queue; the timer may find nothing to do.
func (s *Set) fire() {
	now := time.Now()
	var due []context.CancelCauseFunc
	s.mu.Lock()
	for len(s.q) > 0 && !s.q[0].at.After(now) {
		e := heap.Pop(&s.q).(*entry)
		due = append(due, e.cancel)
	}
	s.armed = time.Time{}
	if len(s.q) > 0 {
		s.arm(s.q[0].at)
	}
	s.mu.Unlock()
	for _, cancel := range due {
		cancel(context.DeadlineExceeded)
	}
}

// timeoutCtx reports the deadline the Set enforces, and DeadlineExceeded
// once it passed.
type timeoutCtx struct {
	context.Context // a cancelCtx
	deadline        time.Time
}

func (c *timeoutCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *timeoutCtx) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}

type entry struct {
	at     time.Time
	cancel context.CancelCauseFunc
	index  int // in the queue; -1 once out of it
}

// queue is a min-heap of entries by deadline.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
