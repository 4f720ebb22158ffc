package process

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/depai/depai/agent/host"
	"github.com/depai/depai/sdk/wire"
)

// A process plugin is not started directly: the host starts a launcher,
// which confines itself — rlimits, no capabilities, no_new_privs, Landlock,
// seccomp — and then execs the plugin, so every restriction is in force
// before the plugin's first instruction and nothing depends on the
// plugin's cooperation. The launcher is a standard-library-only program
// (internal/launch) embedded in every binary that links this package and
// run from a sealed memfd; the host builds the Landlock ruleset and the
// seccomp program and hands them over. Where no launcher is built for the
// architecture, the host re-executes its own binary with launcherArg,
// which this package's init turns into the same launcher.
const launcherArg = "__depai_process_plugin_launcher__"

// launchSpec is what the launcher applies before it execs the plugin.
type launchSpec struct {
	Path      string
	Dir       string   // working directory, the only writable place
	Env       []string // the plugin's whole environment
	DataLimit uint64   // RLIMIT_DATA, bytes
	Landlock  int      // the Landlock ABI to enforce; 0: none
	Scoped    bool     // Landlock signal and abstract-socket scoping
	Exec      []string // files it may read and execute
	ExecDirs  []string // directories it may read and execute from (shared libraries)
	RO        []string
	RW        []string
	Ports     []uint16 // TCP connect
	Listen    []uint16 // TCP bind
	Seccomp   bool
	UDP       bool // UDP sockets allowed (to resolve granted host names)
}

// systemExecDirs and systemRO are what every confined plugin may read:
// shared libraries, the system's programs (for #! plugins and tools a driver
// runs, all under the same confinement) and what name resolution and TLS
// need. None of them holds a secret.
var (
	systemExecDirs = []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/bin", "/usr/bin"}
	systemRO       = []string{"/etc/ld.so.cache", "/etc/ssl", "/etc/ca-certificates", "/usr/share/ca-certificates",
		"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/localtime", "/usr/share/zoneinfo"}
)

// defaultDataLimit caps a process plugin's data segment when neither its
// limits.memory nor Config.MemoryLimit says otherwise.
const defaultDataLimit = 1 << 30

// plan turns a load spec into what the launcher enforces and what the
// plugin's Confinement reports. A feature the kernel lacks fails the plan
// unless spec.UnconfinedOK names it.
func (t *transport) plan(spec host.LoadSpec, workDir string, env []string) (launchSpec, host.Confinement, error) {
	k := t.kernel()
	l := launchSpec{Path: spec.Path, Dir: workDir, Env: childEnv(env, workDir), DataLimit: defaultDataLimit}
	switch {
	case spec.Limits.MemoryBytes > 0:
		l.DataLimit = spec.Limits.MemoryBytes
	case t.cfg.MemoryLimit > 0:
		l.DataLimit = t.cfg.MemoryLimit
	}
	c := host.Confinement{Enforced: []string{
		"empty environment (only the handshake)",
		"own working directory " + workDir,
		fmt.Sprintf("memory: %d MiB of writable mappings (RLIMIT_DATA; a Go runtime maps its heap in 64 MiB arenas)", l.DataLimit>>20),
		"no capabilities, no_new_privs",
		"own process group, killed with it; parent-death signal",
		fmt.Sprintf("CPU while idle: restarted above %.0f%% of a core", t.cfg.IdleCPU*100),
	}}
	var missing []string
	need := func(feature string, have bool, enforced string) bool {
		if have {
			c.Enforced = append(c.Enforced, enforced)
			return true
		}
		missing = append(missing, feature)
		return false
	}
	ports, udp, err := netPorts(spec.Grants.Net)
	if err != nil {
		return l, c, err
	}
	if need(host.FeatureLandlock, k.landlock >= 1, "files: only the plugin, its working directory, system libraries and the granted paths (Landlock)") {
		l.Landlock = k.landlock
		l.Exec = []string{spec.Path}
		l.ExecDirs = existing(systemExecDirs)
		l.RO = existing(systemRO)
		l.RW = []string{workDir, "/dev/null"}
		for _, f := range spec.Grants.Files {
			if f.Mode == wire.FileRW {
				l.RW = append(l.RW, f.Path)
			} else {
				l.RO = append(l.RO, f.Path)
			}
		}
	}
	if need(host.FeatureLandlockNet, k.landlock >= 4, fmt.Sprintf("TCP: connect only to the granted ports %v, listen only on %v (Landlock)", ports, spec.Grants.Listen)) {
		l.Ports = ports
		l.Listen = spec.Grants.Listen
	}
	l.Scoped = need(host.FeatureSignals, k.landlock >= 6, "signals: none to processes outside the plugin's domain (Landlock scope)")
	l.Seccomp = need(host.FeatureSeccomp, k.seccomp, "syscalls: no ptrace, process_vm, bpf, mount, keyrings, kernel modules, raw, SCTP or MPTCP sockets (seccomp)")
	if l.Seccomp {
		l.UDP = udp
		if udp {
			c.Enforced = append(c.Enforced, "UDP: allowed (a net grant names a host, which needs DNS); the kernel does not restrict its destinations")
		} else {
			c.Enforced = append(c.Enforced, "UDP: refused (seccomp)")
		}
	}
	if need(host.FeaturePIDNS, k.pidns, "processes: its own PID namespace; it sees no other process and its children die with it") {
		c.Enforced = slices.DeleteFunc(c.Enforced, func(s string) bool { return strings.HasPrefix(s, "own process group") })
		c.Enforced = append(c.Enforced, "parent-death signal")
	}
	var refused []string
	for _, f := range missing {
		if !slices.Contains(spec.UnconfinedOK, f) {
			refused = append(refused, f)
		}
	}
	if len(refused) > 0 {
		return l, c, fmt.Errorf("this kernel cannot enforce %s for a process plugin (%s); run it as WASM, or add unconfined_ok: [%s] to its config to run it without",
			strings.Join(refused, ", "), k.describe(), strings.Join(refused, ", "))
	}
	c.Missing = missing
	return l, c, nil
}

// childEnv keeps of go-plugin's environment only the handshake and socket
// directory, and points the temporary directory at the working directory.
func childEnv(env []string, workDir string) []string {
	out := []string{"TMPDIR=" + workDir}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == wire.ProcessCookieKey || strings.HasPrefix(k, "PLUGIN_") {
			out = append(out, kv)
		}
	}
	return out
}

// netPorts reads "host:port" grants. udp is whether one names a host rather
// than an IP address, so the plugin must resolve it.
func netPorts(grants []string) (ports []uint16, udp bool, err error) {
	for _, g := range grants {
		h, p, err := net.SplitHostPort(g)
		n, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || n == 0 || h == "" {
			return nil, false, fmt.Errorf("net grant %q: want host:port, such as \"127.0.0.1:2947\"", g)
		}
		if !slices.Contains(ports, uint16(n)) {
			ports = append(ports, uint16(n))
		}
		if net.ParseIP(h) == nil {
			udp = true
		}
	}
	if udp && !slices.Contains(ports, 53) {
		ports = append(ports, 53) // DNS over TCP, for truncated answers
	}
	return ports, udp, nil
}

func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}
