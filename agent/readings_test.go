package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/memory"
)

// readingsFleet is one robot on a memory it shares with the test, so the
// test can store readings at times of its choosing.
func readingsFleet(t *testing.T) (*agent.Agent, *memory.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := memory.Open(t.Context(), memory.Config{Dir: filepath.Join(dir, "memory")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	file, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte("agents:\n  - name: rover\n    role: robot\n"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: dir, Store: db, CacheDir: sharedCache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	a, err := f.Agent("rover")
	if err != nil {
		t.Fatal(err)
	}
	return a, db
}

func putReading(t *testing.T, db *memory.DB, at time.Time, source, sensor, data string) {
	t.Helper()
	if _, err := db.Put(t.Context(), memory.Record{Namespace: "agent/rover/" + source, Kind: memory.KindReading, Author: source, Time: at,
		Text: sensor + ": " + data, Data: json.RawMessage(data), Tags: []string{"plugin:" + source, "sensor:" + sensor}}); err != nil {
		t.Fatal(err)
	}
}

func readingsOf(t *testing.T, a *agent.Agent, text string) agent.Readings {
	t.Helper()
	evs := collect(t, a, text)
	var r agent.Readings
	if err := json.Unmarshal(evs[len(evs)-1].Data, &r); err != nil {
		t.Fatalf("%s: %v in %s", text, err, evs[len(evs)-1].Data)
	}
	return r
}

func TestReadingsOverATimeRange(t *testing.T) {
	a, db := readingsFleet(t)
	now := time.Now()
	// Three hours of one reading a minute; another sensor and text fields
	// beside it must not show up in the series.
	for i := 180; i > 0; i-- {
		at := now.Add(-time.Duration(i) * time.Minute)
		putReading(t, db, at, "simbot", "pose", fmt.Sprintf(`{"speed_mps":%d,"fix":"rtk_fixed","battery":{"pct":%d}}`, i, 100-i/2))
		putReading(t, db, at, "simbot", "temp", `{"c":21.5}`)
	}
	if err := a.Report(t.Context(), "cam", "label", json.RawMessage(`"crate"`)); err != nil {
		t.Fatal(err)
	}

	r := readingsOf(t, a, "/readings simbot/pose 30m")
	if r.Sensor != "simbot/pose" || r.Count != 29 && r.Count != 30 || len(r.T) != r.Count {
		t.Fatalf("last 30 min: sensor %q count %d points %d", r.Sensor, r.Count, len(r.T))
	}
	if strings.Join(r.Fields, ",") != "battery.pct,speed_mps" || len(r.Series) != 2 {
		t.Fatalf("fields %v", r.Fields)
	}
	for i := 1; i < len(r.T); i++ {
		if r.T[i] <= r.T[i-1] {
			t.Fatalf("times out of order at %d: %v", i, r.T)
		}
	}
	if last := r.Series[1][len(r.T)-1]; last == nil || *last != 1 {
		t.Errorf("the newest speed is %v, want 1", last)
	}

	from, to := now.Add(-150*time.Minute).UTC().Format(time.RFC3339), now.Add(-120*time.Minute).UTC().Format(time.RFC3339)
	r = readingsOf(t, a, "/readings simbot/pose "+from+" "+to)
	if r.Count < 29 || r.Count > 31 {
		t.Errorf("an absolute range of 30 min held %d readings", r.Count)
	}
	for j, ts := range r.T {
		at := time.UnixMilli(int64(ts * 1000))
		if at.Before(now.Add(-151*time.Minute)) || at.After(now.Add(-119*time.Minute)) {
			t.Errorf("point %d at %s is outside the range", j, at)
		}
	}

	list := collect(t, a, "/readings")
	var sensors []agent.SensorInfo
	if err := json.Unmarshal(list[len(list)-1].Data, &sensors); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range sensors {
		names[s.Sensor] = true
	}
	if !names["simbot/pose"] || !names["simbot/temp"] || !names["cam/label"] {
		t.Errorf("/readings lists %+v", sensors)
	}
}

// TestReadingsAreBounded: a dense range comes back as at most 1000 points,
// the newest of each bucket, and the range itself is capped.
func TestReadingsAreBounded(t *testing.T) {
	a, db := readingsFleet(t)
	now := time.Now()
	recs := make([]memory.Record, 0, 3000)
	for i := 3000; i > 0; i-- {
		data := fmt.Sprintf(`{"v":%d}`, i)
		recs = append(recs, memory.Record{Namespace: "agent/rover/imu", Kind: memory.KindReading, Author: "imu", Time: now.Add(-time.Duration(i) * time.Second),
			Text: data, Data: json.RawMessage(data), Tags: []string{"plugin:imu", "sensor:accel"}})
	}
	if _, err := db.Put(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	r := readingsOf(t, a, "/readings imu/accel 1h")
	if r.Count != 3000 || len(r.T) == 0 || len(r.T) > 1000 {
		t.Fatalf("count %d, %d points", r.Count, len(r.T))
	}
	if last := r.Series[0][len(r.T)-1]; last == nil || *last != 1 {
		t.Errorf("the newest point is %v, want the newest reading (1)", last)
	}

	for _, tt := range []struct{ text, want string }{
		{"/readings imu/accel 48h", "longer than"},
		{"/readings imu", "SOURCE/SENSOR"},
		{"/readings imu/accel yesterday", "neither an RFC 3339 time"},
		{"/readings imu/accel 1h 2h", "ends"},
		{"/readings imu/accel 1h 0s extra", "usage"},
	} {
		ev := failure(t, a, tt.text)
		if ev.Code != agent.CodeInvalid || !strings.Contains(ev.Error, tt.want) {
			t.Errorf("%s: %s %q, want invalid with %q", tt.text, ev.Code, ev.Error, tt.want)
		}
	}
}
