package telemetry

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/plugins/internal/jsonmap"
	"github.com/depai/depai/plugins/mqtt/internal/sparkplug"
)

// Device is a Sparkplug node or device's state.
type Device struct {
	ID      string    `json:"id" jsonschema:"group/node or group/node/device"`
	Online  bool      `json:"online"`
	Since   time.Time `json:"since" jsonschema:"when the last birth or death arrived"`
	Metrics int       `json:"metrics" jsonschema:"metrics its last birth declared"`
	BdSeq   *uint64   `json:"bd_seq,omitempty" jsonschema:"a node's birth/death sequence: a death with another one is a stale session's and is ignored"`

	aliases map[uint64]string // from its birth: metric alias to name
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
	BadByKind   map[string]int `json:"bad_by_kind,omitempty" jsonschema:"not_json, missing_field, not_number; Sparkplug not_protobuf, unknown_alias, stale_death"`
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

// Message handles one received message: a Sparkplug B topic's protobuf
// payload (births, deaths, data), else the first subscription whose filter
// matches maps the JSON payload.
func (s *State) Message(topic string, payload []byte, retained bool, now time.Time) {
	if sp, ok := ParseSparkplug(topic); ok {
		p, err := sparkplug.Decode(payload)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.count(retained)
		if err != nil {
			s.bad("not_protobuf", fmt.Errorf("mqtt %s: %w", topic, err), now)
			return
		}
		s.sparkplug(sp, p, now)
		return
	}
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
	s.count(retained)
	if err != nil {
		kind := string(jsonmap.KindOf(err))
		if kind == "" {
			kind = "other"
		}
		s.bad(kind, err, now)
		return
	}
	s.add(rs)
}

func (s *State) count(retained bool) {
	s.st.Messages++
	if retained {
		s.st.Retained++
	}
}

func (s *State) add(rs []Reading) {
	for _, r := range rs {
		s.latest[r.Topic+"\x00"+r.Name] = r
		s.st.Readings++
	}
}

func (s *State) bad(kind string, err error, now time.Time) {
	s.st.Bad++
	if s.st.BadByKind == nil {
		s.st.BadByKind = map[string]int{}
	}
	s.st.BadByKind[kind]++
	s.st.LastError, s.st.LastErrorAt = err.Error(), &now
}

func (s *State) device(id string) *Device {
	d := s.devices[id]
	if d == nil {
		d = &Device{ID: id}
		s.devices[id] = d
	}
	return d
}

// sparkplug applies a decoded Sparkplug B message. A birth declares the
// metrics (and their aliases) and brings the node or device online; data
// updates metrics, by name or alias; a node's death takes it and its
// devices offline — unless its bdSeq is not its birth's, which makes it the
// late will of an older session. Numeric and boolean metrics become
// readings under the data topic (…/NDATA/… or …/DDATA/…), births' included.
func (s *State) sparkplug(sp Sparkplug, p sparkplug.Payload, now time.Time) {
	id := sp.ID()
	switch sp.Type {
	case "NBIRTH", "DBIRTH":
		d := s.device(id)
		d.Online, d.Since, d.Metrics, d.aliases = true, now, len(p.Metrics), map[uint64]string{}
		if sp.Type == "NBIRTH" {
			d.BdSeq = nil
			if bd, ok := p.BdSeq(); ok {
				d.BdSeq = &bd
			}
		}
		for _, m := range p.Metrics {
			if m.HasAlias && m.Name != "" {
				d.aliases[m.Alias] = m.Name
			}
		}
		s.metrics(sp, d, p, now)
	case "NDATA", "DDATA":
		s.metrics(sp, s.device(id), p, now)
	case "DDEATH":
		d := s.device(id)
		d.Online, d.Since = false, now
	case "NDEATH":
		d := s.device(id)
		if bd, ok := p.BdSeq(); ok && d.BdSeq != nil && bd != *d.BdSeq {
			s.bad("stale_death", fmt.Errorf("mqtt: NDEATH of %s with bdSeq %d; its birth's is %d: a late will of an older session, ignored", id, bd, *d.BdSeq), now)
			return
		}
		// A node's death is its devices' death too.
		d.Online, d.Since = false, now
		for did, dev := range s.devices {
			if strings.HasPrefix(did, id+"/") {
				dev.Online, dev.Since = false, now
			}
		}
	}
}

func (s *State) metrics(sp Sparkplug, d *Device, p sparkplug.Payload, now time.Time) {
	topic := "spBv1.0/" + sp.Group + "/NDATA/" + sp.Node
	if sp.Device != "" {
		topic = "spBv1.0/" + sp.Group + "/DDATA/" + sp.Node + "/" + sp.Device
	}
	var rs []Reading
	for _, m := range p.Metrics {
		name := m.Name
		if name == "" && m.HasAlias {
			name = d.aliases[m.Alias]
		}
		switch {
		case name == "":
			s.bad("unknown_alias", fmt.Errorf("mqtt %s: metric alias %d was not declared by a birth", topic, m.Alias), now)
		case m.Null || !m.IsNumber || name == "bdSeq" || math.IsNaN(m.Number) || math.IsInf(m.Number, 0):
		default:
			rs = append(rs, Reading{Topic: topic, Name: name, Value: m.Number, Time: now})
		}
	}
	s.add(rs)
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
