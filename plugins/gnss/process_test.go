package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	if testing.Short() {
		t.Skip("builds the plugin")
	}
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
		Emit: func(_, topic string, payload json.RawMessage) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, topic+" "+string(payload))
			return nil
		},
	})
	defer h.Close(context.Background())
	track := trackFile(t)
	_, err = h.Load(context.Background(), host.PluginSpec{
		Name: "gnss", Path: res.Path, Kind: host.KindProcess,
		// The track file is granted: the launcher's Landlock rules let a
		// process plugin open nothing else.
		Grants: wire.Capabilities{Config: []string{"source", "stale_after", "track_len", "record"}, Emit: []string{Topic}, Files: []wire.FileGrant{{Path: track, Mode: wire.FileRO}}},
		Config: map[string]string{"source": "file://" + track + "?speed=0", "stale_after": "1h"},
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

// BenchmarkProcessPluginRSS reports the resident memory of the gnss
// process plugin (found by its executable under /proc) after it loaded and
// replayed the shipped log through the real host: what one GNSS sensor
// costs a robot.
func BenchmarkProcessPluginRSS(b *testing.B) {
	res, err := build.Plugin(context.Background(), build.Options{Dir: ".", Target: build.Native, CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	track := trackFile(b)
	for b.Loop() {
		h := host.New(host.Config{
			Transports: map[string]host.Transport{host.KindProcess: process.New(process.Config{StartTimeout: 20 * time.Second, Logger: discard})},
			Logger:     discard,
		})
		p, err := h.Load(context.Background(), host.PluginSpec{
			Name: "gnss", Path: res.Path, Kind: host.KindProcess,
			Grants: wire.Capabilities{Config: []string{"source", "stale_after", "track_len", "record"}, Emit: []string{Topic}, Files: []wire.FileGrant{{Path: track, Mode: wire.FileRO}}},
			Config: map[string]string{"source": "file://" + track + "?speed=0&loop=true", "stale_after": "1h"},
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, tl := range p.Tools() {
			if tl.Spec().Name == "gnss.status" {
				if _, err := tl.Call(context.Background(), json.RawMessage(`{}`)); err != nil {
					b.Fatal(err)
				}
			}
		}
		time.Sleep(time.Second) // let the looping replay run
		kib := rssKiB(b, res.Path)
		if err := h.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(kib)/1024, "rss-MiB")
	}
}

// rssKiB is VmRSS of the process running exe.
func rssKiB(b *testing.B, exe string) int {
	b.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if target, err := os.Readlink(d + "/exe"); err != nil || target != exe {
			continue
		}
		status, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	b.Fatalf("no process runs %s", exe)
	return 0
}
