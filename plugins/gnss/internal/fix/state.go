package fix

import (
	"sync"
	"time"

	"github.com/depai/depai/plugins/gnss/internal/gpsd"
	"github.com/depai/depai/plugins/gnss/internal/nmea"
)

// Status is what gnss.status shows: the link, what was read, and what was
// refused, by kind.
type Status struct {
	Source      string         `json:"source" jsonschema:"where fixes come from"`
	Connected   bool           `json:"connected" jsonschema:"a link is up and delivered data"`
	Reconnects  int            `json:"reconnects" jsonschema:"links lost since start"`
	Good        int            `json:"good" jsonschema:"sentences or reports accepted"`
	Bad         int            `json:"bad" jsonschema:"sentences or reports refused"`
	BadByKind   map[string]int `json:"bad_by_kind,omitempty" jsonschema:"refusals by kind: checksum, format, too_long, json …"`
	Ignored     int            `json:"ignored" jsonschema:"well-formed sentences of types not read"`
	Fixes       int            `json:"fixes"`
	LastError   string         `json:"last_error,omitempty"`
	LastErrorAt *time.Time     `json:"last_error_at,omitempty"`
	LastData    *time.Time     `json:"last_data,omitempty"`
	Visible     int            `json:"satellites_visible" jsonschema:"satellites in view (gpsd SKY)"`
	Quality     Quality        `json:"quality"`
}

// State is a receiver's shared state: the reader goroutine feeds it, tools
// read it. Its one lock guards everything and is never held while calling
// out.
type State struct {
	mu       sync.Mutex
	tracker  Tracker
	status   Status
	track    []Fix // ring of the newest fixes
	next     int
	full     bool
	gst      *gpsd.GST
	sky      *gpsd.SKY
	timedTPV bool // this link has sent a dated TPV
	// epoch is the tracker's epoch of the newest fix added from NMEA (0:
	// none since the link came up).
	epoch uint64
}

// NewState returns the state of a receiver at source keeping the newest
// trackLen fixes (at least 1).
func NewState(source string, trackLen int) *State {
	return &State{status: Status{Source: source, Quality: None}, track: make([]Fix, max(trackLen, 1))}
}

// NMEA applies one result of nmea.Scan.
func (s *State) NMEA(sen nmea.Sentence, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if nmea.KindOf(err) == nmea.KindUnsupported {
			s.status.Ignored++
			s.data(now)
			return
		}
		s.refuse(string(kindOrLink(err)), err, now)
		return
	}
	s.status.Good++
	s.data(now)
	if f, ok := s.tracker.NMEA(sen, now); ok {
		if e := s.tracker.Epoch(); s.status.Fixes > 0 && e == s.epoch {
			s.replaceLast(f) // the same epoch, dated again by its RMC
		} else {
			s.epoch = e
			s.add(f)
		}
	} else if cur := s.tracker.Current(); s.status.Fixes > 0 && cur.Quality != "" && cur.Time.Equal(s.last().Time) {
		// A VTG, GST or GSA refined the epoch's fix.
		s.replaceLast(cur)
	}
}

func kindOrLink(err error) nmea.Kind {
	if k := nmea.KindOf(err); k != "" {
		return k
	}
	return "link"
}

// GPSD applies one result of gpsd.Watch or gpsd.Stream.
func (s *State) GPSD(r gpsd.Report, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if _, ok := err.(*gpsd.DecodeError); ok {
			s.refuse("json", err, now)
			return
		}
		s.linkLost(err, now)
		return
	}
	s.status.Good++
	s.data(now)
	switch r.Class {
	case "TPV":
		used := 0
		if s.sky != nil {
			used = usedSats(s.sky)
		}
		switch f, ok, err := FromTPV(r.TPV, s.gst, used, now); {
		case err != nil:
			s.refuse("tpv", err, now)
		case !ok:
		case f.Time.IsZero() && s.timedTPV:
			// Undated while dated fixes come: the dated one of this
			// epoch follows; mixing arrival and receiver times would
			// disorder the track.
		case f.Time.IsZero():
			f.Time = now.UTC() // a receiver that never gives gpsd a date
			s.add(f)
		default:
			s.timedTPV = true
			s.add(f)
		}
	case "SKY":
		s.sky = r.SKY
		if r.SKY.NSat != nil {
			s.status.Visible = *r.SKY.NSat
		} else {
			s.status.Visible = len(r.SKY.Satellites)
		}
	case "GST":
		s.gst = r.GST
	case "ERROR":
		s.status.LastError, s.status.LastErrorAt = "gpsd: "+r.Error, ptrTime(now)
	}
}

func usedSats(k *gpsd.SKY) int {
	if k.USat != nil {
		return *k.USat
	}
	n := 0
	for _, sat := range k.Satellites {
		if sat.Used {
			n++
		}
	}
	return n
}

// LinkLost records that the link failed or ended: the fix becomes none
// (an old position is not a current one) and the link is down.
func (s *State) LinkLost(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.linkLost(err, now)
}

func (s *State) linkLost(err error, now time.Time) {
	if s.status.Connected {
		s.status.Reconnects++
	}
	s.status.Connected = false
	s.tracker, s.epoch = Tracker{}, 0 // what the next link says starts afresh
	s.timedTPV = false
	s.status.LastError, s.status.LastErrorAt = err.Error(), ptrTime(now)
	if s.status.Quality != None {
		s.add(Fix{Time: now.UTC(), Quality: None, Received: now})
	}
}

func (s *State) refuse(kind string, err error, now time.Time) {
	s.status.Bad++
	if s.status.BadByKind == nil {
		s.status.BadByKind = map[string]int{}
	}
	s.status.BadByKind[kind]++
	s.status.LastError, s.status.LastErrorAt = err.Error(), ptrTime(now)
}

func (s *State) data(now time.Time) {
	s.status.Connected = true
	s.status.LastData = ptrTime(now)
}

// add appends f to the track; a fix for the same time as the newest
// replaces it (an epoch's GGA and RMC describe one fix).
func (s *State) add(f Fix) {
	if s.status.Fixes > 0 && s.last().Time.Equal(f.Time) {
		s.replaceLast(f)
		return
	}
	s.track[s.next] = f
	s.next = (s.next + 1) % len(s.track)
	s.full = s.full || s.next == 0
	s.status.Fixes++
	s.status.Quality = f.Quality
}

func (s *State) replaceLast(f Fix) {
	s.track[(s.next-1+len(s.track))%len(s.track)] = f
	s.status.Quality = f.Quality
}

func (s *State) last() Fix { return s.track[(s.next-1+len(s.track))%len(s.track)] }

// Current is the newest fix; ok is false before the first.
func (s *State) Current() (Fix, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Fixes == 0 {
		return Fix{}, false
	}
	return s.last(), true
}

// Track returns up to n of the newest fixes, oldest first.
func (s *State) Track(n int) []Fix {
	s.mu.Lock()
	defer s.mu.Unlock()
	have := s.next
	if s.full {
		have = len(s.track)
	}
	n = min(max(n, 0), have)
	out := make([]Fix, 0, n)
	for i := n; i > 0; i-- {
		out = append(out, s.track[(s.next-i+len(s.track))%len(s.track)])
	}
	return out
}

// Status is a copy of the counters.
func (s *State) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if st.BadByKind != nil {
		st.BadByKind = make(map[string]int, len(s.status.BadByKind))
		for k, v := range s.status.BadByKind {
			st.BadByKind[k] = v
		}
	}
	return st
}

func ptrTime(t time.Time) *time.Time { return &t }
