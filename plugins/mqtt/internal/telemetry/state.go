package telemetry

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/plugins/internal/jsonmap"
)

// Device is a Sparkplug node or device's state.
type Device struct {
	ID     string    `json:"id" jsonschema:"group/node or group/node/device"`
	Online bool      `json:"online"`
	Since  time.Time `json:"since" jsonschema:"when the last birth or death arrived"`
}

// Status is what mqtt.status shows.
type Status struct {
	Broker      string         `json:"broker"`
	Connected   bool           `json:"connected"`
	Reconnects  int            `json:"reconnects" jsonschema:"links lost since start"`
	Messages    int            `json:"messages"`
	Retained    int            `json:"retained" jsonschema:"retained messages received"`
	Readings    int            `json:"readings" jsonschema:"readings decoded"`
	Bad         int            `json:"bad"`
	BadByKind   map[string]int `json:"bad_by_kind,omitempty" jsonschema:"not_json, missing_field, not_number"`
	LastError   string         `json:"last_error,omitempty"`
	LastErrorAt *time.Time     `json:"last_error_at,omitempty"`
	Published   int            `json:"published"`
}

// State is what the subscriber learned, shared by paho's callbacks and the
// tools. Its lock guards everything and is never held while calling out.
type State struct {
	subs []Subscription

	mu      sync.Mutex
	st      Status
	latest  map[string]Reading // by topic + "\x00" + name
	devices map[string]*Device
}

// NewState returns the state of a client of broker with subs.
func NewState(broker string, subs []Subscription) *State {
	return &State{subs: subs, st: Status{Broker: broker}, latest: map[string]Reading{}, devices: map[string]*Device{}}
}

// Message handles one received message: Sparkplug birth/death, then the
// first subscription whose filter matches maps the payload.
func (s *State) Message(topic string, payload []byte, retained bool, now time.Time) {
	var fields []Field
	for _, sub := range s.subs {
		if Match(sub.Filter, topic) {
			fields = sub.Fields
			break
		}
	}
	rs, err := Decode(topic, payload, fields, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Messages++
	if retained {
		s.st.Retained++
	}
	if sp, ok := ParseSparkplug(topic); ok {
		s.sparkplug(sp, now)
	}
	if err != nil {
		s.st.Bad++
		if s.st.BadByKind == nil {
			s.st.BadByKind = map[string]int{}
		}
		kind := string(jsonmap.KindOf(err))
		if kind == "" {
			kind = "other"
		}
		s.st.BadByKind[kind]++
		s.st.LastError, s.st.LastErrorAt = err.Error(), &now
		return
	}
	for _, r := range rs {
		s.latest[r.Topic+"\x00"+r.Name] = r
		s.st.Readings++
	}
}

func (s *State) sparkplug(sp Sparkplug, now time.Time) {
	set := func(id string, online bool) {
		d := s.devices[id]
		if d == nil {
			d = &Device{ID: id}
			s.devices[id] = d
		}
		d.Online, d.Since = online, now
	}
	switch sp.Type {
	case "NBIRTH":
		set(sp.ID(), true)
	case "DBIRTH":
		set(sp.ID(), true)
	case "DDEATH":
		set(sp.ID(), false)
	case "NDEATH":
		// A node's death is its devices' death too.
		node := sp.ID()
		set(node, false)
		for id := range s.devices {
			if strings.HasPrefix(id, node+"/") {
				set(id, false)
			}
		}
	}
}

// Connected records that the client is connected (again).
func (s *State) Connected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Connected = true
}

// LinkLost records that the connection dropped. Every Sparkplug node and
// device is marked offline: without the broker their deaths would go
// unheard, so "online" would be a guess (Sparkplug asks host applications
// the same); their next births bring them back.
func (s *State) LinkLost(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Connected {
		s.st.Reconnects++
	}
	for _, d := range s.devices {
		if d.Online {
			d.Online, d.Since = false, now
		}
	}
	s.st.Connected = false
	s.st.LastError, s.st.LastErrorAt = "connection lost: "+err.Error(), &now
}

// Failed records an error of the link that does not end it (a refused
// subscription).
func (s *State) Failed(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.LastError, s.st.LastErrorAt = err.Error(), &now
}

// Published counts a publish.
func (s *State) Published() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Published++
}

// Status is a copy of the counters.
func (s *State) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if st.BadByKind != nil {
		st.BadByKind = make(map[string]int, len(s.st.BadByKind))
		for k, v := range s.st.BadByKind {
			st.BadByKind[k] = v
		}
	}
	return st
}

// Latest is the newest reading of every topic and name, sorted by topic
// then name.
func (s *State) Latest() []Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Reading, 0, len(s.latest))
	for _, r := range s.latest {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reading) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Devices lists the Sparkplug nodes and devices, by ID.
func (s *State) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}
