package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/depai/depai/internal/atomicfile"
)

// StateFile is the name of the safety state file in its directory.
const StateFile = "safety.json"

// EStop is the emergency stop's state.
type EStop struct {
	Engaged bool      `json:"engaged"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Reason  string    `json:"reason,omitempty"`
}

// State is the safety state that must survive a crash: the e-stop, the
// approvals waiting for an operator and who holds teleop control. Every change is written to a file and
// synced before it is reported done. A state that cannot be read engages
// the e-stop: a restart never releases it.
type State struct {
	path string

	// mu guards the fields below and the file. Lock order: after Engine.mu.
	mu        sync.Mutex
	estop     EStop
	approvals []Approval
	teleop    map[string]string // agent → the operator holding exclusive control
	// broken is why the file could not be read at open, if it could not;
	// the e-stop is then engaged until an admin releases it.
	broken string
}

type stateFile struct {
	Version   int               `json:"version"`
	EStop     EStop             `json:"estop"`
	Approvals []Approval        `json:"approvals,omitempty"`
	Teleop    map[string]string `json:"teleop,omitempty"`
}

// OpenState reads the safety state kept in dir (created if missing). A file
// that exists but cannot be read or decoded does not fail the open: the
// e-stop starts engaged, saying why, and the damaged file is kept beside
// the new one for inspection.
func OpenState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("safety state: %w", err)
	}
	s := &State{path: filepath.Join(dir, StateFile)}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err == nil:
		var f stateFile
		if err = json.Unmarshal(data, &f); err == nil && f.Version != 1 {
			err = fmt.Errorf("version %d, want 1", f.Version)
		}
		if err == nil {
			s.estop, s.approvals, s.teleop = f.EStop, f.Approvals, f.Teleop
			return s, nil
		}
	}
	s.broken = fmt.Sprintf("the safety state %s could not be read (%v), so the emergency stop is engaged until an admin checks and releases it", s.path, err)
	s.estop = EStop{Engaged: true, By: "system", At: time.Now().UTC(), Reason: s.broken}
	if data != nil {
		_ = os.WriteFile(s.path+".damaged", data, 0o600)
	}
	return s, nil
}

// Broken says why the state file could not be read at open ("" if it could).
func (s *State) Broken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// EStop is the e-stop's state.
func (s *State) EStop() EStop {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.estop
}

// Approvals are the pending approvals, oldest first.
func (s *State) Approvals() []Approval {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.approvals)
}

// Teleop says which operator holds exclusive control of an agent's robot.
func (s *State) Teleop(agent string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.teleop[agent]
	return h, ok
}

// setTeleop gives holder exclusive control of agent ("" releases it).
func (s *State) setTeleop(agent, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.teleop[agent]
	if s.teleop == nil {
		s.teleop = map[string]string{}
	}
	if holder == "" {
		delete(s.teleop, agent)
	} else {
		s.teleop[agent] = holder
	}
	if err := s.saveLocked(); err != nil {
		if had {
			s.teleop[agent] = old
		} else {
			delete(s.teleop, agent)
		}
		return err
	}
	return nil
}

func (s *State) setEStop(e EStop) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.estop
	s.estop = e
	if err := s.saveLocked(); err != nil {
		if !e.Engaged {
			// A release that is not durable is not made: after a crash the
			// stop would be back anyway.
			s.estop = old
		}
		return err
	}
	if !e.Engaged {
		s.broken = ""
	}
	return nil
}

func (s *State) addApproval(a Approval) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approvals = append(s.approvals, a)
	return s.saveLocked()
}

// removeApproval takes a pending approval out, reporting whether it was there.
func (s *State) removeApproval(id string) (Approval, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.approvals, func(a Approval) bool { return a.ID == id })
	if i < 0 {
		return Approval{}, false
	}
	a := s.approvals[i]
	s.approvals = slices.Delete(s.approvals, i, i+1)
	_ = s.saveLocked() // an approval that stays on file is denied at the next start
	return a, true
}

// takeApprovals removes every pending approval (those of an earlier run).
func (s *State) takeApprovals() []Approval {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.approvals
	s.approvals = nil
	return out
}

func (s *State) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

// saveLocked replaces the state atomically: the file is either the old
// state or the new one, never a mix.
func (s *State) saveLocked() error {
	data, err := json.MarshalIndent(stateFile{Version: 1, EStop: s.estop, Approvals: s.approvals, Teleop: s.teleop}, "", "  ")
	if err != nil {
		return fmt.Errorf("safety state: encode: %w", err)
	}
	if err := atomicfile.Write(s.path, data); err != nil {
		return fmt.Errorf("safety state: %w", err)
	}
	return nil
}
