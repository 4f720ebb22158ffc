package native

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/depai/depai/sdk/internal/registry"
	"github.com/depai/depai/sdk/wire"
)

// hostLostGrace bounds the stop handler when the host is gone: the process
// exits after it whether or not the handler returned, so a plugin never
// outlives its agent by more than this.
const hostLostGrace = 5 * time.Second

// watchdogStopTimeout bounds a stop the watchdog starts.
const watchdogStopTimeout = 5 * time.Second

// actuation is the plugin side of the stop contract (wire.MethodStop,
// wire.MethodHeartbeat): the watchdog that stops the machine when the host's
// heartbeats stop, and the stop before exit when the host is gone.
type actuation struct {
	reg       *registry.Registry
	plugin    string
	hasStop   bool
	timeout   time.Duration   // 0: no watchdog
	actuators map[string]bool // actuator tools, refused while tripped
	exit      func(code int)

	mu      sync.Mutex
	timer   *time.Timer
	tripped bool
	last    time.Time // last heartbeat, or the start

	lost sync.Once
}

func newActuation(reg *registry.Registry, m wire.Manifest, plugin string) *actuation {
	a := &actuation{reg: reg, plugin: plugin, hasStop: m.Actuation.Stop, actuators: map[string]bool{}, exit: os.Exit}
	for _, t := range m.Tools {
		if t.Effect == wire.EffectActuator {
			a.actuators[t.Name] = true
		}
	}
	// The host refuses a manifest with a bad watchdog; unparsable means none.
	a.timeout, _ = m.Actuation.WatchdogTimeout()
	return a
}

// start arms the watchdog (the host's first heartbeat is due within the
// timeout of start) and, for a plugin with a stop handler, turns the
// parent-death signal (SIGTERM) into a stop before exit.
func (a *actuation) start() {
	if !a.hasStop {
		return
	}
	// The host's pipes close with it; a log line written to them then must
	// fail, not kill the process with SIGPIPE before the machine is stopped.
	signal.Ignore(syscall.SIGPIPE)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		s := <-sig
		a.hostGone(fmt.Sprintf("received %v (the agent died or is stopping it)", s))
	}()
	if a.timeout > 0 {
		a.mu.Lock()
		a.last = time.Now()
		a.timer = time.AfterFunc(a.timeout, a.trip)
		a.mu.Unlock()
	}
}

// intercept handles what the transport answers itself: heartbeats, and
// actuator calls while the watchdog is tripped.
func (a *actuation) intercept(call wire.Call) (wire.Result, bool) {
	if call.Method == wire.MethodHeartbeat {
		a.beat()
		return wire.Result{Payload: json.RawMessage(`{}`)}, true
	}
	if a.actuators[call.Method] {
		a.mu.Lock()
		tripped, last := a.tripped, a.last
		a.mu.Unlock()
		if tripped {
			return wire.Result{Error: &wire.Error{Code: wire.CodeUnavailable, Retryable: true, Message: fmt.Sprintf(
				"plugin %q: watchdog tripped: no heartbeat from the host since %v ago (timeout %v); %s is refused until heartbeats resume",
				a.plugin, time.Since(last).Round(time.Millisecond), a.timeout, call.Method)}}, true
		}
	}
	return wire.Result{}, false
}

func (a *actuation) beat() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = time.Now()
	if a.timer == nil {
		return
	}
	a.timer.Reset(a.timeout)
	if a.tripped {
		a.tripped = false
		fmt.Fprintf(stderr, "depai plugin %q: heartbeats resumed; actuator calls accepted again\n", a.plugin)
	}
}

// trip runs when no heartbeat came within the timeout. It stops the machine
// once per lapse; the next heartbeat re-arms it.
func (a *actuation) trip() {
	a.mu.Lock()
	if a.tripped {
		a.mu.Unlock()
		return
	}
	a.tripped = true
	since := time.Since(a.last).Round(time.Millisecond)
	a.mu.Unlock()
	fmt.Fprintf(stderr, "depai plugin %q: watchdog: no heartbeat from the host for %v (timeout %v); stopping actuators\n", a.plugin, since, a.timeout)
	ctx, cancel := context.WithTimeout(context.Background(), watchdogStopTimeout)
	defer cancel()
	a.stop(ctx, wire.StopWatchdog)
}

// hostGone stops the machine and exits: the host closed the call socket,
// died, or sent the parent-death signal. Later callers wait for the first.
func (a *actuation) hostGone(why string) {
	first := false
	a.lost.Do(func() {
		first = true
		if a.hasStop {
			fmt.Fprintf(stderr, "depai plugin %q: host lost (%s); stopping actuators before exit\n", a.plugin, why)
			done := make(chan struct{})
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), hostLostGrace)
				defer cancel()
				a.stop(ctx, wire.StopHostLost)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(hostLostGrace + 100*time.Millisecond):
				fmt.Fprintf(stderr, "depai plugin %q: stop handler still running %v after the host was lost; exiting\n", a.plugin, hostLostGrace)
			}
		}
		a.exit(0)
	})
	if !first {
		select {} // the first caller is stopping the machine and will exit
	}
}

// stop calls the registered stop handler directly, without a host.
func (a *actuation) stop(ctx context.Context, reason string) {
	payload, _ := json.Marshal(wire.StopArgs{Reason: reason})
	res := a.reg.Dispatch(ctx, nil, wire.Call{Method: wire.MethodStop, Payload: payload, CallID: reason})
	if res.Error != nil {
		fmt.Fprintf(stderr, "depai plugin %q: stop handler (%s) failed: %v\n", a.plugin, reason, res.Error)
	}
}
