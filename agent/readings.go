package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/depai/depai/memory"
)

// Bounds of /readings: what one answer may cost however much is stored.
const (
	// readingsMaxRange is the longest time range one answer covers.
	readingsMaxRange = 24 * time.Hour
	// readingsMaxScan is how many stored readings one answer reads at
	// most, newest first; past it the answer says truncated and starts
	// where the scan stopped.
	readingsMaxScan = 100_000
	// readingsPoints is how many points a series has at most: past it the
	// range is cut into this many equal buckets, each showing its newest
	// reading (so a spike in a long range can fall between points; zoom
	// in to see every reading).
	readingsPoints = 1000
	// readingsMaxFields is how many numeric fields a series carries.
	readingsMaxFields = 16
	// readingsListScan is how many recent readings the sensor list reads.
	readingsListScan = 5000
	// readingsSlack is how far before the range the newest-first scan
	// still reads: a reading's Time is its writer's, not commit order.
	readingsSlack = time.Minute
)

// SensorInfo is one sensor of /readings: SOURCE/SENSOR, where SOURCE is
// the plugin (or the embedding program's source) that reads it.
type SensorInfo struct {
	Sensor string    `json:"sensor"`
	Last   time.Time `json:"last"`
	Fields []string  `json:"fields"`
}

// Readings is the answer of /readings SOURCE/SENSOR: the numeric fields of
// its readings as columns, ready for a plot. T holds Unix seconds; Series[i]
// holds Fields[i]'s values at T, null where a reading lacked the field.
type Readings struct {
	Sensor    string       `json:"sensor"`
	Since     time.Time    `json:"since"`
	Until     time.Time    `json:"until"`
	Count     int          `json:"count"`     // readings in the range (as far as the scan read)
	Truncated bool         `json:"truncated"` // the scan stopped at readingsMaxScan before Since
	Fields    []string     `json:"fields"`
	T         []float64    `json:"t"`
	Series    [][]*float64 `json:"series"`
}

func readingsCommand(ctx context.Context, a *Agent, c call) (any, string, error) {
	args := strings.Fields(c.args)
	if len(args) == 0 || args[0] == "list" {
		list, err := a.sensors(ctx)
		if err != nil {
			return nil, "", err
		}
		var b strings.Builder
		if len(list) == 0 {
			b.WriteString("no readings stored in the last hour")
		}
		for _, s := range list {
			fmt.Fprintf(&b, "%s  last %s  fields %s\n", s.Sensor, s.Last.Format(time.RFC3339), strings.Join(s.Fields, ", "))
		}
		return list, strings.TrimRight(b.String(), "\n"), nil
	}
	if len(args) > 3 {
		return nil, "", &commandError{code: CodeInvalid, msg: "usage: " + readingsUsage}
	}
	source, sensor, ok := strings.Cut(args[0], "/")
	if !ok || source == "" || sensor == "" || strings.Contains(sensor, "/") {
		return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("/readings: sensor %q is not SOURCE/SENSOR (as /readings lists them, e.g. simbot/pose)", args[0])}
	}
	now := time.Now()
	since, until := now.Add(-time.Hour), now
	var err error
	if len(args) > 1 {
		if since, err = readingsTime(args[1], now); err != nil {
			return nil, "", err
		}
	}
	if len(args) > 2 {
		if until, err = readingsTime(args[2], now); err != nil {
			return nil, "", err
		}
	}
	if !until.After(since) {
		return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("/readings: the range ends (%s) before it starts (%s)", until.Format(time.RFC3339), since.Format(time.RFC3339))}
	}
	if until.Sub(since) > readingsMaxRange {
		return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("/readings: a range of %s is longer than the %s one answer covers", until.Sub(since).Round(time.Second), readingsMaxRange)}
	}
	r, err := a.readings(ctx, source, sensor, since, until)
	if err != nil {
		return nil, "", err
	}
	text := fmt.Sprintf("%s: %d readings from %s to %s, fields %s", r.Sensor, r.Count, r.Since.Format(time.RFC3339), r.Until.Format(time.RFC3339), strings.Join(r.Fields, ", "))
	if r.Truncated {
		text += fmt.Sprintf(" (only the newest %d read)", readingsMaxScan)
	}
	return r, text, nil
}

const readingsUsage = "/readings [SOURCE/SENSOR [FROM [TO]]] — FROM and TO are RFC 3339 times or durations ago (2h); the default range is the last hour"

// readingsTime is an RFC 3339 time or a duration before now.
func readingsTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, &commandError{code: CodeInvalid, msg: fmt.Sprintf("/readings: %q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration ago (90m)", s)}
}

// sensorOf is the SOURCE/SENSOR of a stored reading of this agent, or "".
func (a *Agent) sensorOf(r *memory.Record) string {
	source, ok := strings.CutPrefix(r.Namespace, a.ns+"/")
	if !ok || source == "" || strings.Contains(source, "/") {
		return ""
	}
	for _, t := range r.Tags {
		if s, ok := strings.CutPrefix(t, "sensor:"); ok && s != "" {
			return source + "/" + s
		}
	}
	return ""
}

// sensors lists the sensors with readings in the last hour, newest first,
// from at most readingsListScan readings.
func (a *Agent) sensors(ctx context.Context) ([]SensorInfo, error) {
	since := time.Now().Add(-time.Hour)
	seen := map[string]int{}
	var out []SensorInfo
	// Since is a filter, not an index: the newest-first scan stops itself
	// once past the hour, so older readings cost nothing.
	for r, err := range a.mem.Query(ctx, memory.Query{Namespace: a.ns, Kinds: []memory.Kind{memory.KindReading}, Limit: readingsListScan}) {
		if err != nil {
			return nil, fmt.Errorf("/readings: %w", err)
		}
		if r.Time.Before(since.Add(-readingsSlack)) {
			break
		}
		if r.Time.Before(since) {
			continue
		}
		name := a.sensorOf(&r)
		if name == "" {
			continue
		}
		if _, ok := seen[name]; ok {
			continue
		}
		seen[name] = len(out)
		out = append(out, SensorInfo{Sensor: name, Last: r.Time, Fields: slices.Sorted(maps.Keys(numericFields(r.Data)))})
	}
	return out, nil
}

// readings reads one sensor's readings in [since, until), newest first and
// bounded, and lays them out as columns in time order.
func (a *Agent) readings(ctx context.Context, source, sensor string, since, until time.Time) (*Readings, error) {
	out := &Readings{Sensor: source + "/" + sensor, Since: since.UTC(), Until: until.UTC(), Fields: []string{}, T: []float64{}, Series: [][]*float64{}}
	type point struct {
		t time.Time
		v map[string]float64
	}
	var pts []point // newest first
	fields := map[string]bool{}
	scanned := 0
	q := memory.Query{Namespace: a.ns + "/" + source, Kinds: []memory.Kind{memory.KindReading}, Tags: []string{"sensor:" + sensor}, Until: until}
	for r, err := range a.mem.Query(ctx, q) {
		if err != nil {
			return nil, fmt.Errorf("/readings %s: %w", out.Sensor, err)
		}
		if scanned++; scanned > readingsMaxScan {
			out.Truncated = true
			break
		}
		if r.Time.Before(since.Add(-readingsSlack)) {
			break // older than the range by more than writers' clocks disagree
		}
		if r.Time.Before(since) {
			continue
		}
		v := numericFields(r.Data)
		for f := range v {
			if !fields[f] && len(fields) < readingsMaxFields {
				fields[f] = true
			}
		}
		pts = append(pts, point{r.Time, v})
	}
	out.Count = len(pts)
	slices.Reverse(pts)
	slices.SortStableFunc(pts, func(x, y point) int { return x.t.Compare(y.t) })
	out.Fields = slices.Sorted(maps.Keys(fields))
	// Past readingsPoints, keep the newest reading of each equal bucket.
	if len(pts) > readingsPoints {
		width := max(until.Sub(since)/readingsPoints, 1)
		kept := pts[:0]
		for i, p := range pts {
			if i+1 < len(pts) && p.t.Sub(since)/width == pts[i+1].t.Sub(since)/width {
				continue
			}
			kept = append(kept, p)
		}
		pts = kept
	}
	out.Series = make([][]*float64, len(out.Fields))
	for i := range out.Series {
		out.Series[i] = make([]*float64, len(pts))
	}
	out.T = make([]float64, len(pts))
	for j, p := range pts {
		out.T[j] = float64(p.t.UnixMilli()) / 1000
		for i, f := range out.Fields {
			if v, ok := p.v[f]; ok {
				out.Series[i][j] = &v
			}
		}
	}
	return out, nil
}

// numericFields are the finite numbers of a reading: its top-level fields
// and those one object down (as "outer.inner"), or "value" for a bare
// number. Anything else (text, lists, deeper objects) is not plotted.
func numericFields(data json.RawMessage) map[string]float64 {
	out := map[string]float64{}
	var v any
	if json.Unmarshal(data, &v) != nil {
		return out
	}
	put := func(k string, x any) {
		if f, ok := x.(float64); ok && !math.IsInf(f, 0) && !math.IsNaN(f) {
			out[k] = f
		}
	}
	switch v := v.(type) {
	case float64:
		put("value", v)
	case map[string]any:
		for k, x := range v {
			if inner, ok := x.(map[string]any); ok {
				for k2, y := range inner {
					put(k+"."+k2, y)
				}
				continue
			}
			put(k, x)
		}
	}
	if len(out) > readingsMaxFields {
		for _, k := range slices.Sorted(maps.Keys(out))[readingsMaxFields:] {
			delete(out, k)
		}
	}
	return out
}
