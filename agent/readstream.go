package agent

import (
	"context"
	"encoding/json"
	"iter"
	"strings"
	"time"

	"github.com/depai/depai/memory"
)

// Reading is one sensor reading of an agent: a plugin's poll, or its
// program's Report.
type Reading struct {
	Source string          `json:"source"` // the plugin, or Report's source
	Sensor string          `json:"sensor"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
}

// Readings streams the agent's readings stored from now on, in the order
// they commit, until ctx ends (then it ends without an error) or the store
// fails. It reads through the agent's own grants.
func (a *Agent) Readings(ctx context.Context) iter.Seq2[Reading, error] {
	return func(yield func(Reading, error) bool) {
		q := memory.Query{Namespace: a.ns, Kinds: []memory.Kind{memory.KindReading}, AfterSeq: a.fleet.store.LastSeq()}
		for r, err := range a.mem.Watch(ctx, q) {
			if err != nil {
				if ctx.Err() == nil {
					yield(Reading{}, err)
				}
				return
			}
			rd := Reading{Source: r.Author, Time: r.Time, Data: r.Data}
			for _, tag := range r.Tags {
				if s, ok := strings.CutPrefix(tag, "sensor:"); ok {
					rd.Sensor = s
				}
			}
			if !yield(rd, nil) {
				return
			}
		}
	}
}
