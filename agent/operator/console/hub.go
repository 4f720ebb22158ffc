package console

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/depai/depai/agent"
)

// FleetEvent is one event of the fleet-wide stream: an agent's event,
// stamped with the agent and the time.
type FleetEvent struct {
	Agent string      `json:"agent"`
	Time  time.Time   `json:"time"`
	Event agent.Event `json:"event"`
}

// Hub fans the fleet's events out to subscribers: the console and any
// script on GET /v1/events. Publish never blocks: a subscriber that falls
// behind by more than its buffer loses the oldest events and is told how
// many (FleetEvent with Event.Type "dropped").
type Hub struct {
	mu   sync.Mutex // guards subs and closed; held only to copy or change them
	subs map[*subscriber]struct{}
	done bool
}

type subscriber struct {
	ch      chan FleetEvent
	mu      sync.Mutex
	dropped int
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*subscriber]struct{}{}} }

// Publish is an agent.Options.Events sink.
func (h *Hub) Publish(agentName string, ev agent.Event) {
	fe := FleetEvent{Agent: agentName, Time: time.Now().UTC(), Event: ev}
	h.mu.Lock()
	subs := make([]*subscriber, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- fe:
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}

// Subscribe returns a channel of events and a cancel func that ends it.
func (h *Hub) Subscribe(buffer int) (<-chan FleetEvent, func() int, func()) {
	s := &subscriber{ch: make(chan FleetEvent, max(buffer, 1))}
	h.mu.Lock()
	if !h.done {
		h.subs[s] = struct{}{}
	}
	h.mu.Unlock()
	dropped := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := s.dropped
		s.dropped = 0
		return n
	}
	return s.ch, dropped, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}
}

// Close ends every subscription.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	clear(h.subs)
}

// encode is one event as SSE data.
func encode(fe FleetEvent) []byte {
	b, _ := json.Marshal(fe)
	return b
}
