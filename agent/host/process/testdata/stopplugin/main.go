// Command stopplugin is an actuator process plugin for the host's tests of
// the stop contract: it records every stop it is given — in its state and
// as a "pid reason" line appended to stops.log beside its executable, so a
// test sees the stops a process made just before it went away (its grants
// are gone by then, so it could not tell the host) — and can be told to
// ignore stops, crash, or hold its call slots.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

type state struct {
	Moving  bool     `json:"moving"`
	Reasons []string `json:"reasons"`
	PID     int      `json:"pid"`
	Ignore  bool     `json:"ignore"`
}

var (
	mu sync.Mutex
	st = state{PID: procID, Reasons: []string{}}
)

type none struct{}

type ignoreArgs struct {
	On bool `json:"on"`
}

type holdArgs struct {
	MS int `json:"ms"`
}

// record appends "pid reason" to stops.log beside the executable.
// procID tells this process from its restarts. Not the pid: the launcher
// gives every process plugin its own PID namespace, where it is always 1.
var procID = int(time.Now().UnixNano()%1_000_000_000) + 2

func record(reason string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(filepath.Dir(exe), "stops.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d %s\n", procID, reason)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func init() {
	sdk.Plugin("stopplugin", "0.1.0")
	sdk.Requests(wire.Capabilities{Actuator: true})
	sdk.Tool("move", "Starts moving.", func(context.Context, none) (none, error) {
		mu.Lock()
		st.Moving = true
		mu.Unlock()
		return none{}, nil
	}, sdk.Actuator())
	sdk.Tool("state", "What the plugin was told.", func(context.Context, none) (state, error) {
		mu.Lock()
		defer mu.Unlock()
		s := st
		s.Reasons = append([]string{}, st.Reasons...)
		return s, nil
	})
	sdk.Tool("ignore", "Ignore stops from now on (or not).", func(_ context.Context, in ignoreArgs) (none, error) {
		mu.Lock()
		st.Ignore = in.On
		mu.Unlock()
		return none{}, nil
	})
	sdk.Tool("hold", "Holds a call slot for ms milliseconds.", func(ctx context.Context, in holdArgs) (none, error) {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
		}
		return none{}, nil
	})
	sdk.Tool("crash", "Exits at once.", func(context.Context, none) (none, error) {
		os.Exit(2)
		return none{}, nil
	})
	sdk.OnStop(func(ctx context.Context) error {
		mu.Lock()
		ignore := st.Ignore
		mu.Unlock()
		if ignore {
			<-ctx.Done()
			return ctx.Err()
		}
		reason := sdk.StopReason(ctx)
		mu.Lock()
		st.Moving = false
		st.Reasons = append(st.Reasons, reason)
		mu.Unlock()
		return record(reason)
	})
	// Long enough never to trip on a loaded test machine: these tests count
	// stops; the watchdog's timing is tested with simbot.
	sdk.Watchdog(5 * time.Second)
}

func main() { sdk.Main() }
