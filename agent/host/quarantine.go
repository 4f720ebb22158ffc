package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/internal/atomicfile"
)

// QuarantineFile is the name of the quarantine record in a data directory,
// beside the safety state.
const QuarantineFile = "quarantine.json"

// Quarantine is the durable record of quarantined plugins, shared by the
// hosts of a fleet (Config.Quarantine): a plugin quarantined for not
// acknowledging a stop or for crash looping stays quarantined across a
// restart of the agent, kill -9 included, until an operator releases it.
// Every change is written to a temporary file, synced and renamed over the
// old record before it is reported done. A record that cannot be read
// quarantines every plugin (fail closed) until each is released; the
// damaged file is kept beside it for inspection.
type Quarantine struct {
	path string

	// mu guards the fields below and the file. Lock order: after
	// actuation.mu.
	mu      sync.Mutex
	plugins map[string]QuarantineEntry // by key(agent, plugin)
	// broken is why the record could not be read at open, if it could not;
	// then every plugin but those released is quarantined.
	broken   string
	released []string // keys released while broken
}

// QuarantineEntry is one quarantined plugin.
type QuarantineEntry struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

type quarantineFile struct {
	Version int                        `json:"version"`
	Plugins map[string]QuarantineEntry `json:"plugins,omitempty"` // by "agent/plugin"
	// All is set once an unreadable record was replaced: every plugin is
	// quarantined but those released since.
	All *quarantineAll `json:"all,omitempty"`
}

type quarantineAll struct {
	Reason   string   `json:"reason"`
	Released []string `json:"released,omitempty"`
}

// OpenQuarantine reads the quarantine record kept in dir (created if
// missing). A file that exists but cannot be read or decoded does not fail
// the open: every plugin is quarantined, saying why (Broken).
func OpenQuarantine(dir string) (*Quarantine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	q := &Quarantine{path: filepath.Join(dir, QuarantineFile), plugins: map[string]QuarantineEntry{}}
	data, err := os.ReadFile(q.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return q, nil
	case err == nil:
		var f quarantineFile
		if err = json.Unmarshal(data, &f); err == nil && f.Version != 1 {
			err = fmt.Errorf("version %d, want 1", f.Version)
		}
		if err == nil {
			maps.Copy(q.plugins, f.Plugins)
			if f.All != nil {
				q.broken, q.released = f.All.Reason, f.All.Released
			}
			return q, nil
		}
	}
	q.broken = fmt.Sprintf("the quarantine record %s could not be read (%v), so every plugin is quarantined until an admin checks its machine and releases it (/plugins release NAME)", q.path, err)
	if data != nil {
		_ = os.WriteFile(q.path+".damaged", data, 0o600)
	}
	return q, nil
}

func key(agent, plugin string) string { return agent + "/" + plugin }

// Broken says why the record could not be read when the fleet first met
// it damaged ("" if it could): every plugin not released since is then
// quarantined.
func (q *Quarantine) Broken() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.broken
}

// Lookup reports why an agent's plugin is quarantined, if it is.
func (q *Quarantine) Lookup(agent, plugin string) (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(agent, plugin)
	if e, ok := q.plugins[k]; ok {
		return e.Reason, true
	}
	if q.broken != "" && !slices.Contains(q.released, k) {
		return q.broken, true
	}
	return "", false
}

// List is every quarantined plugin of an agent by name, with why; while
// the record is broken, the plugins not named here are quarantined too.
func (q *Quarantine) List(agent string) map[string]string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]string{}
	for k, e := range q.plugins {
		if name, ok := strings.CutPrefix(k, agent+"/"); ok {
			out[name] = e.Reason
		}
	}
	return out
}

// Put quarantines an agent's plugin; it is on disk when Put returns nil.
func (q *Quarantine) Put(agent, plugin, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.plugins[key(agent, plugin)] = QuarantineEntry{Reason: reason, Since: time.Now().UTC()}
	return q.saveLocked()
}

// Release lets an agent's plugin load again and reports whether it was
// quarantined. The release is on disk when it returns nil; if it is not,
// the plugin stays quarantined.
func (q *Quarantine) Release(agent, plugin string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(agent, plugin)
	old, had := q.plugins[k]
	byBroken := q.broken != "" && !slices.Contains(q.released, k)
	if !had && !byBroken {
		return false, nil
	}
	delete(q.plugins, k)
	if byBroken {
		q.released = append(q.released, k)
	}
	if err := q.saveLocked(); err != nil {
		if had {
			q.plugins[k] = old
		}
		if byBroken {
			q.released = q.released[:len(q.released)-1]
		}
		return false, err
	}
	return true, nil
}

// saveLocked replaces the record atomically: the file is either the old
// record or the new one, never a mix.
func (q *Quarantine) saveLocked() error {
	f := quarantineFile{Version: 1, Plugins: q.plugins}
	if q.broken != "" {
		f.All = &quarantineAll{Reason: q.broken, Released: q.released}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("quarantine: encode: %w", err)
	}
	if err := atomicfile.Write(q.path, data); err != nil {
		return fmt.Errorf("quarantine record: %w", err)
	}
	return nil
}
