// Package process is the host transport for process plugins: native
// executables built with sdk.Main. hashicorp/go-plugin starts each one,
// checks the handshake (magic cookie, ABI as protocol version) and gives
// both sides a gRPC connection: Init goes over it, and the plugin's host
// calls come back through go-plugin's GRPCBroker to the LoadSpec's
// Dispatcher. Calls into the plugin take a framed Unix socket the plugin
// opens at Init (see wire.ProcessReady): one call per connection at a time,
// binary envelopes, the caller reading its own result and the plugin
// running the call on the goroutine that read it, raw system calls
// (internal/rawsock) and deadlines without a runtime timer per call
// (internal/deadline) — each of those woke another thread per call, and a
// thread wake-up is what a call costs on a busy machine.
//
// go-plugin starts and stops a process; this package adds what it lacks:
// supervision (restart with backoff after a crash, give up after repeated
// crashes), a parent-death signal so a killed agent leaves no orphans, a
// deadline on every call, a message size limit both ways, and the plugin's
// output in the agent's log under its name.
package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

// Config configures the process transport. The zero value is usable.
type Config struct {
	// Logger receives the plugins' stdout and stderr, one record per line
	// with the plugin's name, and supervision events. Nil: slog.Default().
	Logger *slog.Logger
	// StartTimeout bounds a start, from exec to a read manifest. Default 5s.
	StartTimeout time.Duration
	// Restart is the supervision policy.
	Restart Restart
	// HangGrace is how long a handler may run on after its call ended
	// (deadline or cancellation) before the plugin process exits and is
	// restarted. Default 2s.
	HangGrace time.Duration
	// MemoryLimit caps the data segment (RLIMIT_DATA, set by the launcher
	// before the plugin runs) of a plugin whose Limits.MemoryBytes is 0.
	// Default 1 GiB.
	MemoryLimit uint64
	// IdleCPU is the share of one core a plugin may use while no call is
	// in flight, measured over IdleWindow; above it the plugin is reported
	// and restarted (a goroutine left spinning after a call). Default 0.5.
	IdleCPU float64
	// IdleWindow is how often idle CPU is measured. Default 2s.
	IdleWindow time.Duration
	// Unavailable lists confinement features (host.Feature*) to treat as
	// missing even where the kernel has them — for a kernel whose
	// implementation misbehaves, and for tests of unconfined_ok.
	Unavailable []string
}

// Restart is when and how often a crashed plugin is restarted.
type Restart struct {
	MinBackoff time.Duration // wait before the first restart; doubles per crash. Default 50ms.
	MaxBackoff time.Duration // cap on the wait. Default 5s.
	// MaxCrashes within Window make the plugin unavailable for good (until
	// it is reloaded). Defaults 5 and 1 minute.
	MaxCrashes int
	Window     time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 5 * time.Second
	}
	if c.HangGrace <= 0 {
		c.HangGrace = 2 * time.Second
	}
	if c.IdleCPU <= 0 {
		c.IdleCPU = 0.5
	}
	if c.IdleWindow <= 0 {
		c.IdleWindow = 2 * time.Second
	}
	r := &c.Restart
	if r.MinBackoff <= 0 {
		r.MinBackoff = 50 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 5 * time.Second
	}
	if r.MaxCrashes <= 0 {
		r.MaxCrashes = 5
	}
	if r.Window <= 0 {
		r.Window = time.Minute
	}
	return c
}

// New returns the process transport.
func New(cfg Config) host.Transport {
	return &transport{cfg: cfg.withDefaults()}
}

type transport struct {
	cfg Config
	// slowLaunch logs, once, that plugins start through the fallback
	// launcher (see launcherNote).
	slowLaunch sync.Once
}

var _ host.Transport = (*transport)(nil)

// Warm sets up, once a process, what every plugin's start needs first: the
// launcher in its sealed memfd and the kernel probe (one or two runs of the
// launcher in a new PID namespace, 2–5 ms). A fleet calls it when its config
// names a process plugin, before it opens its store, so the probe overlaps
// the store's syncs instead of delaying the plugin's start after them.
func (t *transport) Warm() { probeKernel() }

// Load starts the plugin, reads its manifest and supervises it until Close.
func (t *transport) Load(ctx context.Context, spec host.LoadSpec) (host.Instance, error) {
	if spec.Name == "" {
		return nil, errors.New("process: load: the plugin has no name")
	}
	if err := checkExecutable(spec.Path); err != nil {
		return nil, fmt.Errorf("process: load plugin %q: %w", spec.Name, err)
	}
	// Refuse at once what this kernel cannot confine as the config asks.
	if _, _, err := t.plan(spec, os.TempDir(), nil); err != nil {
		return nil, fmt.Errorf("process: load plugin %q: %w", spec.Name, err)
	}
	t.slowLaunch.Do(func() {
		if why := launcherNote(); why != "" {
			t.cfg.Logger.Warn("process plugins start through a re-execution of this binary, some 10-25 ms slower than through the embedded launcher", "reason", why)
		}
	})
	in := newInstance(t, spec)
	p, m, err := in.start(ctx)
	if err != nil {
		return nil, fmt.Errorf("process: load plugin %q (%s): %w", spec.Name, spec.Path, err)
	}
	if m.ABI != wire.ABIVersion {
		p.kill()
		return nil, fmt.Errorf("process: load plugin %q (%s): it speaks ABI %d, this agent speaks ABI %d; rebuild it against this depai",
			spec.Name, spec.Path, m.ABI, wire.ABIVersion)
	}
	in.manifest = m
	in.install(p)
	return in, nil
}

// checkExecutable turns the usual wrong-file mistakes into errors that say
// what the file is, before go-plugin reports a failed handshake.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	if bytes.Equal(head[:n], []byte("\x00asm")) {
		return fmt.Errorf("%s is a WASM module, not a native executable: load it with the wasm transport", path)
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (mode %v)", path, fi.Mode().Perm())
	}
	return nil
}

// result is a failed call's Result.
func result(code string, retryable bool, format string, args ...any) wire.Result {
	e := wire.Errorf(code, format, args...)
	e.Retryable = retryable
	return wire.Result{Error: e}
}

// CPUTime is the CPU time the process serving in has used so far, or false
// when there is none (or the system does not say).
func CPUTime(in host.Instance) (time.Duration, bool) {
	pid := PID(in)
	if pid == 0 {
		return 0, false
	}
	return cpuTime(pid)
}

// PID returns the operating-system process id currently serving in, or 0
// when in is not a process plugin or has no live process (restarting, given
// up, closed). Operators see it in plugin listings; `depai plugin test`
// uses it to kill the plugin on purpose.
func PID(in host.Instance) int {
	i, ok := in.(*instance)
	if !ok {
		return 0
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cur == nil {
		return 0
	}
	return i.cur.run.pid
}
