package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/plugins/gnss/internal/fix"
	"github.com/depai/depai/sdk/wire"
)

// TestProcessPlugin builds the plugin natively and runs it as the agent
// does — a supervised process plugin behind the real host — replaying the
// shipped log: the host's poller gets gnss.fix readings from the reader
// goroutine, and emitted events reach the host.
func TestProcessPlugin(t *testing.T) {
	res, err := build.Plugin(context.Background(), build.Options{Dir: ".", Target: build.Native, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var readings []fix.Fix
	var events []string
	h := host.New(host.Config{
		Transports: map[string]host.Transport{host.KindProcess: process.New(process.Config{StartTimeout: 20 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnReading: func(_, sensor string, payload json.RawMessage, err error) {
			var f fix.Fix
			if err != nil || json.Unmarshal(payload, &f) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			readings = append(readings, f)
		},
		Emit: func(_, topic string, payload json.RawMessage) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, topic+" "+string(payload))
		},
	})
	defer h.Close(context.Background())
	_, err = h.Load(context.Background(), host.PluginSpec{
		Name: "gnss", Path: res.Path, Kind: host.KindProcess,
		Grants: wire.Capabilities{Config: []string{"source", "stale_after", "track_len", "record"}, Emit: []string{Topic}},
		Config: map[string]string{"source": "file://" + trackFile(t) + "?speed=0", "stale_after": "1h"},
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, ev := len(readings), len(events)
		var last fix.Fix
		if n > 0 {
			last = readings[n-1]
		}
		mu.Unlock()
		if n > 0 && last.Quality == fix.RTKFixed && ev >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readings %d (last %+v), events %d", n, last, ev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
