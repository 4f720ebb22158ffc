//go:build linux

package host_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/agent/host/process"
	"github.com/depai/depai/sdk/wire"
)

// TestProcessConfined is the attack on a process plugin: before the
// launcher it read /etc/passwd and the operator token, inherited every
// environment variable (OPENAI_API_KEY among them), reached ports its
// grants did not name and could SIGKILL its agent. Each attempt must now
// fail, and what was granted must still work.
func TestProcessConfined(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-must-not-leak")
	dataDir := t.TempDir()
	token := filepath.Join(dataDir, "token")
	if err := os.WriteFile(token, []byte("operator-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	granted := filepath.Join(t.TempDir(), "granted.txt")
	if err := os.WriteFile(granted, []byte("for the plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	allowed, forbidden := listen(t), listen(t)

	h := containHost(t, host.Config{})
	p := loadHostile(t, h, host.KindProcess, wire.Capabilities{
		Files: []wire.FileGrant{{Path: granted, Mode: wire.FileRO}},
		Net:   []string{allowed},
	})
	if c := p.Confinement(); len(c.Missing) != 0 || len(c.Enforced) == 0 {
		t.Fatalf("confinement = %+v; want everything enforced on this kernel", c)
	}

	for _, path := range []string{"/etc/passwd", token, filepath.Join(dataDir, ".")} {
		if out, werr := callHostile(t, p, "hostile.read", map[string]string{"path": path}); werr != nil || out.Err == "" {
			t.Errorf("read %s = %+v, %v; want the kernel to refuse it", path, out, werr)
		}
	}
	if out, _ := callHostile(t, p, "hostile.read", map[string]string{"path": granted}); out.Value != "for the plugin" {
		t.Errorf("read of a granted file = %+v", out)
	}
	if out, _ := callHostile(t, p, "hostile.write", map[string]string{"path": granted}); out.Err == "" {
		t.Errorf("write to a read-only grant = %+v; want refused", out)
	}
	env, _ := callHostile(t, p, "hostile.env", struct{}{})
	for _, kv := range strings.Split(env.Value, "\n") {
		k, _, _ := strings.Cut(kv, "=")
		if k != wire.ProcessCookieKey && k != "TMPDIR" && !strings.HasPrefix(k, "PLUGIN_") {
			t.Errorf("plugin environment has %s; want only the handshake", k)
		}
	}
	if cwd, _ := callHostile(t, p, "hostile.cwd", struct{}{}); cwd.Value == "" || strings.HasPrefix(cwd.Value, dataDir) {
		t.Errorf("plugin working directory %+v", cwd)
	} else if here, _ := os.Getwd(); cwd.Value == here {
		t.Errorf("plugin runs in the agent's working directory %s", here)
	}
	if out, _ := callHostile(t, p, "hostile.dial", map[string]string{"addr": allowed}); out.Value != "connected" {
		t.Errorf("dial of the granted %s = %+v", allowed, out)
	}
	if out, _ := callHostile(t, p, "hostile.dial", map[string]string{"addr": forbidden}); out.Err == "" {
		t.Errorf("dial of %s, not granted, = %+v; want refused", forbidden, out)
	}
	if out, _ := callHostile(t, p, "hostile.udp", map[string]string{"addr": allowed}); out.Err == "" {
		t.Errorf("UDP to %s = %+v; want refused (the kernel cannot restrict its destination)", allowed, out)
	}
	if out, _ := callHostile(t, p, "hostile.kill", map[string]int{"n": os.Getpid()}); out.Err == "" {
		t.Errorf("kill of the agent's pid = %+v; want refused", out)
	}
	// Its parent is outside its PID namespace: getppid() is 0, and
	// kill(0) signals only its own process group. The agent (this test)
	// lives on, and the plugin is restarted.
	_, _ = callHostile(t, p, "hostile.killparent", struct{}{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out, werr := callHostile(t, p, "hostile.cwd", struct{}{}); werr == nil && out.Value != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin not back after killing its own group")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listen starts a TCP listener on loopback that accepts and closes, and
// returns its address.
func listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestProcessMemoryLimit: limits.memory holds for a process plugin (it
// used to allocate 2 GiB under a 128 MiB limit).
func TestProcessMemoryLimit(t *testing.T) {
	h := containHost(t, host.Config{})
	for _, limit := range []uint64{128 << 20, 256 << 20} {
		p := loadHostileSpec(t, h, host.PluginSpec{Name: fmt.Sprint("mem", limit>>20), Kind: host.KindProcess, Limits: host.Limits{MemoryBytes: limit}})
		out, werr := callHostile(t, p, "hostile.alloc", map[string]int{"n": 2048})
		if werr == nil || werr.Code != wire.CodeCrashed {
			t.Fatalf("2 GiB under a %d MiB limit = %+v, %v; want the plugin to die of it", limit>>20, out, werr)
		}
	}
	// RLIMIT_DATA counts writable mappings, and the Go runtime maps its
	// heap in 64 MiB arenas: a Go plugin needs some 150 MiB of limit for a
	// working heap of tens of MiB.
	p, _ := h.Plugin("mem256")
	if out, werr := callHostile(t, p, "hostile.alloc", map[string]int{"n": 16}); werr != nil || out.Count != 16 {
		t.Fatalf("16 MiB under 256 MiB, after the restart = %+v, %v", out, werr)
	}
}

// TestProcessChildrenDieWithIt: a child the plugin starts dies when the
// plugin is unloaded (children used to be orphaned and outlive the agent).
func TestProcessChildrenDieWithIt(t *testing.T) {
	h := containHost(t, host.Config{})
	p := loadHostile(t, h, host.KindProcess, wire.Capabilities{})
	if _, werr := callHostile(t, p, "hostile.spawn", struct{}{}); werr != nil {
		t.Fatal(werr)
	}
	kids := children(process.PID(p.Instance()))
	if len(kids) == 0 {
		t.Fatal("the plugin's child is not running")
	}
	if err := h.Unload(context.Background(), "hostile"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, kid := range kids {
		for running(kid) {
			if time.Now().After(deadline) {
				t.Fatalf("child %d outlived its unloaded plugin", kid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestProcessIdleCPU: a plugin that leaves a goroutine spinning after its
// call is reported and restarted (it used to burn a core unnoticed).
func TestProcessIdleCPU(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// A low limit, so the spinner is caught even when the test shares the
	// two cores with other packages' tests (it then gets well under a core).
	h := containHostWith(t, host.Config{Logger: log}, process.Config{IdleWindow: 300 * time.Millisecond, IdleCPU: 0.2})
	p := loadHostile(t, h, host.KindProcess, wire.Capabilities{})
	inst := p.Instance()
	before := process.PID(inst)
	if _, werr := callHostile(t, p, "hostile.spin", struct{}{}); werr != nil {
		t.Fatal(werr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "plugin burned CPU while idle; restarting it") {
		if time.Now().After(deadline) {
			t.Fatalf("a spinning plugin was not restarted; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		// The first call may still meet the dying process.
		if _, werr := callHostile(t, p, "hostile.cwd", struct{}{}); werr == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(werr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := process.PID(inst); after == before || after == 0 {
		t.Fatalf("pid %d before, %d after; want a new process", before, after)
	}
}

// TestProcessUnconfinedOK: where the kernel lacks a confinement feature a
// process plugin loads only if the config allowed that feature to go, and
// its Confinement says what is not enforced.
func TestProcessUnconfinedOK(t *testing.T) {
	h := containHostWith(t, host.Config{}, process.Config{Unavailable: []string{host.FeatureLandlock}})
	_, err := h.Load(context.Background(), host.PluginSpec{Name: "hostile", Kind: host.KindProcess, Path: hostile(t, host.KindProcess)})
	// Without Landlock there are no network rules or signal scoping either.
	lacks := []string{host.FeatureLandlock, host.FeatureLandlockNet, host.FeatureSignals}
	if err == nil || !strings.Contains(err.Error(), "cannot enforce landlock, landlock-net, signals") || !strings.Contains(err.Error(), "unconfined_ok: [landlock, landlock-net, signals]") {
		t.Fatalf("Load = %v; want a refusal naming what is missing and unconfined_ok", err)
	}
	if _, err := h.Load(context.Background(), host.PluginSpec{Name: "hostile", Kind: host.KindProcess, Path: hostile(t, host.KindProcess), UnconfinedOK: lacks[:1]}); err == nil || !strings.Contains(err.Error(), "cannot enforce landlock-net, signals") {
		t.Fatalf("Load with only landlock allowed = %v; want the other two refused", err)
	}
	p := loadHostileSpec(t, h, host.PluginSpec{Kind: host.KindProcess, UnconfinedOK: lacks})
	if c := p.Confinement(); !slices.Equal(c.Missing, lacks) {
		t.Fatalf("confinement = %+v; want %v reported missing", c, lacks)
	}
	// Without Landlock the plugin reads what it likes: exactly what the
	// report says.
	if out, _ := callHostile(t, p, "hostile.read", map[string]string{"path": "/etc/passwd"}); out.Err != "" {
		t.Fatalf("read without landlock = %+v; the report says files are not confined", out)
	}
}

// children lists the pids of pid's children.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// running reports whether pid is alive and not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
