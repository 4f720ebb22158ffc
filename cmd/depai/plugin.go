package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/build"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/agent/host/wasm"
	"github.com/depai/depai/cmd/depai/internal/scaffold"
	"github.com/depai/depai/sdk/schema"
	"github.com/depai/depai/sdk/wire"
)

const depaiModule = "github.com/depai/depai"

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Write, build, inspect and test plugins",
		Long: `A plugin is a Go main package written against github.com/depai/depai/sdk.
The same source builds to a sandboxed WASM module (the default) or a native
process plugin:

  depai plugin new NAME            scaffold a plugin that builds and passes its test
  depai plugin build DIR           build it (--wasm or --native)
  depai plugin inspect FILE        print its manifest as JSON
  depai plugin test FILE           run the conformance and chaos checks against it`,
	}
	cmd.AddCommand(newPluginNewCmd(), newPluginBuildCmd(), newPluginInspectCmd(), newPluginTestCmd())
	return cmd
}

func newPluginNewCmd() *cobra.Command {
	var dir, depaiSrc string
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Scaffold a plugin with one typed tool and its test",
		Long: `new writes a plugin package NAME into --dir (default ./NAME).

Inside a depai checkout the plugin is a package of that module. Elsewhere it
is a module of its own that requires depai; when this depai binary was built
from a checkout (or --depai/$DEPAI_SRC names one), the module replaces depai
with that directory. Dependencies are then resolved with go mod tidy.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := scaffold.CheckName(name); err != nil {
				return err
			}
			if dir == "" {
				dir = name
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			data := scaffold.Data{Name: name}
			if modRoot, modPath := enclosingModule(filepath.Dir(abs)); modPath != depaiModule || modRoot == "" {
				if data, err = ownModule(name, depaiSrc); err != nil {
					return err
				}
			}
			wrote, err := scaffold.Write(abs, data)
			if err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			if data.Module != "" {
				tidy := exec.CommandContext(cmd.Context(), "go", "mod", "tidy")
				tidy.Dir = abs
				if out, err := tidy.CombinedOutput(); err != nil {
					return fmt.Errorf("plugin new: wrote %s, but go mod tidy failed (run it there once the module proxy is reachable): %w\n%s", dir, err, out)
				}
				wrote = append(wrote, "go.sum")
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created plugin %q in %s: %s\n\n", name, dir, strings.Join(wrote, ", "))
			fmt.Fprintf(out, "next:\n  cd %s\n  go test ./...\n  depai plugin build . -o %s.wasm\n  depai plugin test %s.wasm\n", dir, name, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create (default ./NAME)")
	cmd.Flags().StringVar(&depaiSrc, "depai", "", "a depai source checkout to build against (default $DEPAI_SRC, or the checkout this binary was built from)")
	return cmd
}

// ownModule is the scaffold of a plugin that is a module of its own.
func ownModule(name, depaiSrc string) (scaffold.Data, error) {
	d := scaffold.Data{
		Name:         name,
		Module:       name,
		GoVersion:    strings.TrimPrefix(strings.Fields(strings.ReplaceAll(runtime.Version(), "-", " "))[0], "go"),
		DepaiVersion: "v0.0.0-00010101000000-000000000000",
	}
	if depaiSrc == "" {
		depaiSrc = os.Getenv("DEPAI_SRC")
	}
	if depaiSrc == "" {
		depaiSrc = builtFrom()
	}
	if depaiSrc != "" {
		abs, err := filepath.Abs(depaiSrc)
		if err != nil {
			return d, err
		}
		if root, mod := enclosingModule(abs); root != abs || mod != depaiModule {
			return d, fmt.Errorf("--depai %s: not the root of a %s checkout (no go.mod declaring it)", depaiSrc, depaiModule)
		}
		d.Replace = abs
		return d, nil
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path == depaiModule && strings.HasPrefix(bi.Main.Version, "v") {
		d.DepaiVersion = bi.Main.Version
		return d, nil
	}
	return d, errors.New("plugin new: cannot tell which depai to build against: pass --depai DIR (a depai checkout) or set $DEPAI_SRC")
}

// builtFrom is the depai checkout this binary was compiled from, when its
// source paths were kept (not -trimpath) and the checkout is still there.
func builtFrom() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	root, mod := enclosingModule(filepath.Dir(file))
	if mod != depaiModule {
		return ""
	}
	return root
}

// enclosingModule finds the go.mod at or above dir and returns its
// directory and module path.
func enclosingModule(dir string) (root, path string) {
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
					return dir, strings.Trim(f[1], `"`)
				}
			}
			return dir, ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ""
		}
		dir = parent
	}
}

func newPluginBuildCmd() *cobra.Command {
	var out, cacheDir string
	var asWASM, asNative bool
	cmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Build a plugin package to WASM (default) or a native process plugin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asWASM && asNative {
				return errors.New("plugin build: --wasm and --native exclude each other")
			}
			target := build.WASM
			if asNative {
				target = build.Native
			}
			dir := args[0]
			if out == "" {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return err
				}
				out = filepath.Base(abs)
				if target == build.WASM {
					out += ".wasm"
				}
			}
			res, err := build.Plugin(cmd.Context(), build.Options{Dir: dir, Target: target, Out: out, CacheDir: cacheDir})
			if err != nil {
				return err
			}
			note := "built"
			if res.Cached {
				note = "unchanged, from the cache"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s, %s)\n", res.Path, target, note)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asWASM, "wasm", false, "build a sandboxed WASM module (the default)")
	cmd.Flags().BoolVar(&asNative, "native", false, "build a native process plugin")
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default ./DIR.wasm, or ./DIR for --native)")
	cmd.Flags().StringVar(&cacheDir, "cache", "", "build cache directory (default the user cache dir's depai/plugins)")
	return cmd
}

func newPluginInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Load a plugin and print its manifest as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := openPlugin(cmd.Context(), args[0], quietLogger(cmd.ErrOrStderr()), host.Limits{})
			if err != nil {
				return err
			}
			defer p.close()
			b, err := json.MarshalIndent(p.Manifest(), "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		},
	}
}

// loaded is a plugin loaded outside an agent, for inspect and test.
type loaded struct {
	host.Instance
	kind  string // host.KindWASM or host.KindProcess
	close func()
}

// openPlugin loads the file with the transport its first bytes call for,
// granting nothing: host calls other than log are denied.
func openPlugin(ctx context.Context, path string, log *slog.Logger, limits host.Limits) (*loaded, error) {
	head := make([]byte, 4)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	n, _ := io.ReadFull(f, head)
	f.Close()
	spec := host.LoadSpec{Name: strings.TrimSuffix(filepath.Base(path), ".wasm"), Path: path, Host: grantNothing{log: log}, Limits: limits}
	switch kind := host.KindOf(head[:n]); kind {
	case host.KindWASM:
		t, err := wasm.New(wasm.Config{Logger: log})
		if err != nil {
			return nil, err
		}
		in, err := t.Load(ctx, spec)
		if err != nil {
			_ = t.Close(ctx)
			return nil, err
		}
		return &loaded{Instance: in, kind: kind, close: func() {
			_ = in.Close(context.Background())
			_ = t.Close(context.Background())
		}}, nil
	case host.KindProcess:
		in, err := process.New(process.Config{Logger: log}).Load(ctx, spec)
		if err != nil {
			return nil, err
		}
		return &loaded{Instance: in, kind: kind, close: func() { _ = in.Close(context.Background()) }}, nil
	}
	return nil, fmt.Errorf("%s is neither a WASM module nor a native executable (first bytes %q)", path, head[:n])
}

// grantNothing is the host outside an agent: a plugin may log; every other
// capability is denied, as it is in an agent that grants none.
type grantNothing struct{ log *slog.Logger }

func (g grantNothing) HostCall(_ context.Context, plugin, method string, payload []byte) ([]byte, *wire.Error) {
	if method == wire.HostLog {
		var a wire.LogArgs
		_ = json.Unmarshal(payload, &a)
		g.log.Info(a.Msg, "plugin", plugin)
		return nil, nil
	}
	return nil, wire.Errorf(wire.CodeDenied, "plugin %q: %s is not granted outside an agent", plugin, method)
}

func newPluginTestCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test FILE",
		Short: "Run the conformance and chaos checks against a built plugin",
		Long: `test loads the plugin as an agent would (granting nothing) and checks that
it describes itself correctly (name, ABI, tools with valid JSON Schemas),
that every tool and sensor called with a schema-valid zero input answers or
fails with a typed error without crashing, that oversize input is refused,
and that it recovers: a process plugin is SIGKILLed and must be restarted,
a WASM plugin must answer after a call that missed its deadline. It runs
the plugin under the same confinement an agent does and lists it — for a
process plugin, what the kernel enforces (Landlock, seccomp, its own PID
namespace, the memory limit), failing when a feature is missing here — and
fails a plugin whose errors carry stack traces into the caller's context or
that burns CPU while idle between calls.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := &report{w: cmd.OutOrStdout()}
			runConformance(cmd.Context(), r, args[0], timeout, quietLogger(cmd.ErrOrStderr()))
			fmt.Fprintf(r.w, "\n%d passed, %d failed\n", r.passed, r.failed)
			if r.failed > 0 {
				return fmt.Errorf("plugin test: %d check(s) failed", r.failed)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "deadline of each call")
	return cmd
}

type report struct {
	w              io.Writer
	passed, failed int
}

func (r *report) check(name string, err error) bool {
	if err != nil {
		r.failed++
		fmt.Fprintf(r.w, "FAIL %s: %v\n", name, err)
		return false
	}
	r.passed++
	fmt.Fprintf(r.w, "ok   %s\n", name)
	return true
}

func (r *report) skip(name, why string) { fmt.Fprintf(r.w, "skip %s: %s\n", name, why) }

const testMaxMessage = 1 << 20

func runConformance(ctx context.Context, r *report, path string, timeout time.Duration, log *slog.Logger) {
	p, err := openPlugin(ctx, path, log, host.Limits{CallTimeout: timeout, MaxMessageBytes: testMaxMessage})
	if !r.check("load", err) {
		return
	}
	defer p.close()
	m := p.Manifest()
	r.check("manifest", checkManifest(m))
	// What the sandbox holds the plugin to, as an agent would run it.
	if c, ok := p.Instance.(host.Confined); ok {
		for _, e := range c.Confinement().Enforced {
			fmt.Fprintf(r.w, "     confined: %s\n", e)
		}
		r.check("confinement complete on this kernel", func() error {
			if miss := c.Confinement().Missing; len(miss) > 0 {
				return fmt.Errorf("not enforced here: %s", strings.Join(miss, ", "))
			}
			return nil
		}())
	}

	res := p.Call(ctx, wire.Call{Method: wire.MethodDescribe, CallID: "describe"})
	r.check("$describe", func() error {
		if res.Error != nil {
			return res.Error
		}
		var d wire.Manifest
		if err := json.Unmarshal(res.Payload, &d); err != nil {
			return fmt.Errorf("not a manifest: %w", err)
		}
		if d.Name != m.Name || len(d.Tools) != len(m.Tools) {
			return fmt.Errorf("describes %q with %d tools; loaded as %q with %d", d.Name, len(d.Tools), m.Name, len(m.Tools))
		}
		return nil
	}())

	for _, t := range m.Tools {
		name := "tool " + t.Name + " with a zero input"
		in, err := zeroInput(t.Input)
		if err != nil {
			r.skip(name, err.Error())
			continue
		}
		r.check(name, survives(ctx, p, t.Name, in, t.Output))
	}
	for _, s := range m.Sensors {
		r.check("sensor "+s.Name, survives(ctx, p, s.Name, nil, s.Output))
	}

	if p.kind == host.KindProcess {
		// A plugin that keeps burning CPU after its calls returned is
		// restarted by an agent; say so here first.
		r.check("idle between calls", func() error {
			before, ok := process.CPUTime(p.Instance)
			time.Sleep(time.Second)
			after, ok2 := process.CPUTime(p.Instance)
			if !ok || !ok2 {
				return nil
			}
			if used := after - before; used > 500*time.Millisecond {
				return fmt.Errorf("used %v of CPU in the idle second after its calls; an agent restarts a plugin above half a core", used)
			}
			return nil
		}())
	}

	res = p.Call(ctx, wire.Call{Method: "$no-such-method", CallID: "unknown"})
	r.check("unknown method is not_found", expectCode(res, wire.CodeNotFound))

	big, _ := json.Marshal(strings.Repeat("x", testMaxMessage))
	method := wire.MethodDescribe
	if len(m.Tools) > 0 {
		method = m.Tools[0].Name
	}
	res = p.Call(ctx, wire.Call{Method: method, Payload: big, CallID: "oversize"})
	r.check("oversize input is too_large", expectCode(res, wire.CodeTooLarge))

	switch p.kind {
	case host.KindProcess:
		r.check("restarted after SIGKILL", func() error {
			pid := process.PID(p.Instance)
			if pid == 0 {
				return errors.New("no live process")
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				return err
			}
			// A call racing the death would be reported crashed (and
			// retryable); the probe is about what comes after.
			for deadline := time.Now().Add(timeout); process.PID(p.Instance) == pid; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					return fmt.Errorf("pid %d still serving %v after SIGKILL", pid, timeout)
				}
			}
			res := p.Call(ctx, wire.Call{Method: wire.MethodDescribe, CallID: "after-kill"})
			if res.Error != nil {
				return fmt.Errorf("first call after the kill: %w", res.Error)
			}
			if now := process.PID(p.Instance); now == pid || now == 0 {
				return fmt.Errorf("pid %d before the kill, %d after", pid, now)
			}
			return nil
		}())
	case host.KindWASM:
		r.check("answers after a missed deadline", func() error {
			dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			defer cancel()
			if res := p.Call(dctx, wire.Call{Method: wire.MethodDescribe, CallID: "expired"}); res.Error == nil {
				return errors.New("a call with an expired deadline succeeded")
			}
			if res := p.Call(ctx, wire.Call{Method: wire.MethodDescribe, CallID: "after"}); res.Error != nil {
				return fmt.Errorf("next call: %w", res.Error)
			}
			return nil
		}())
	}
}

func checkManifest(m wire.Manifest) error {
	// What an agent would refuse at load, then what an author should fix
	// although an agent would accept it.
	errs := []error{host.CheckManifest(m)}
	if m.Name == "" {
		errs = append(errs, errors.New("no name (call sdk.Plugin in init)"))
	}
	for _, t := range m.Tools {
		if t.Description == "" {
			errs = append(errs, fmt.Errorf("tool %s has no description (the model reads it)", t.Name))
		}
	}
	return errors.Join(errs...)
}

// survives calls method and accepts an answer or a typed refusal; a crash,
// a missed deadline or an answer that breaks the output schema fails.
func survives(ctx context.Context, p *loaded, method string, in json.RawMessage, output json.RawMessage) error {
	res := p.Call(ctx, wire.Call{Method: method, Payload: in, CallID: "zero-" + method})
	if e := res.Error; e != nil {
		switch {
		case strings.Contains(e.Message, "goroutine ") || strings.Contains(e.Message, ".go:"):
			return fmt.Errorf("its error carries a stack trace into the caller's (a model's) context: %.200s", e.Message)
		case e.Code == wire.CodeCrashed, e.Code == wire.CodeTimeout:
			return e
		}
		return nil
	}
	if len(output) > 0 {
		s, err := schema.Parse(output)
		if err != nil {
			return err
		}
		if err := s.Validate(res.Payload); err != nil {
			return fmt.Errorf("result %s: %w", res.Payload, err)
		}
	}
	return nil
}

func expectCode(res wire.Result, code string) error {
	if res.Error == nil || res.Error.Code != code {
		return fmt.Errorf("got %s, %v; want error code %s", res.Payload, res.Error, code)
	}
	return nil
}

// zeroInput derives the smallest input the schema accepts: required
// properties only, each at its type's zero (or first enum value, or minimum).
func zeroInput(raw json.RawMessage) (json.RawMessage, error) {
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("input schema: %w", err)
	}
	b, err := json.Marshal(zeroOf(s))
	if err != nil {
		return nil, err
	}
	sch, err := schema.Parse(raw)
	if err != nil {
		return nil, err
	}
	if err := sch.Validate(b); err != nil {
		return nil, fmt.Errorf("no schema-valid zero input (%s): %w", b, err)
	}
	return b, nil
}

func zeroOf(s map[string]any) any {
	if c, ok := s["const"]; ok {
		return c
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	typ, _ := s["type"].(string)
	if ts, ok := s["type"].([]any); ok {
		for _, t := range ts {
			if t, _ := t.(string); t != "null" {
				typ = t
				break
			}
		}
	}
	switch typ {
	case "object", "":
		obj := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		req, _ := s["required"].([]any)
		for _, k := range req {
			k, _ := k.(string)
			ps, _ := props[k].(map[string]any)
			obj[k] = zeroOf(ps)
		}
		return obj
	case "array":
		n, _ := s["minItems"].(float64)
		items, _ := s["items"].(map[string]any)
		arr := make([]any, int(n))
		for i := range arr {
			arr[i] = zeroOf(items)
		}
		return arr
	case "string":
		n, _ := s["minLength"].(float64)
		return strings.Repeat("a", int(n))
	case "integer", "number":
		if v, ok := s["minimum"].(float64); ok {
			return v
		}
		if v, ok := s["exclusiveMinimum"].(float64); ok {
			return v + 1
		}
		return 0
	case "boolean":
		return false
	}
	return nil
}
