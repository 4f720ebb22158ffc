package config

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// Defaults of values a config leaves out.
const (
	DefaultOperatorAddr = "127.0.0.1:7700"
	DefaultModelCalls   = 8
	DefaultToolCalls    = 16
	DefaultWallTime     = Duration(2 * time.Minute)
	DefaultTokens       = 32000
	DefaultDepth        = 4
	DefaultInbox        = 64
	DefaultConcurrency  = 2
	DefaultApproval     = Duration(5 * time.Minute)

	DefaultModelTimeout     = Duration(60 * time.Second)
	DefaultFirstByteTimeout = Duration(15 * time.Second)
)

// auditNamespace is policy.AuditNamespace (which imports this package).
const auditNamespace = "audit"

// envRE and rateRE are compiled at their first use, not at package
// initialisation: every program that links config paid for both at start,
// also one whose config names no variable or rate.
var (
	envRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	rateRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)/(s|min|h)$`) })
)

// validName reports whether s is a name: 1 to 64 of [A-Za-z0-9_-], not
// starting with _ or -. Names become memory namespaces, URL path segments
// and NATS subject tokens, so no dots, slashes or spaces. (As a regexp,
// ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$, its compile was most of this package's
// init, which every start pays.)
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// finish applies defaults and checks what the decoder cannot see field by
// field: names, duplicates, files, formats. It is the one place defaults live.
func (d *decoder) finish(f *File, fleet bool) {
	if f.Operator.Addr != "" {
		if _, port, err := net.SplitHostPort(f.Operator.Addr); err != nil || port == "" {
			d.errAt("operator.addr", "invalid address %q (expected host:port, such as %q)", f.Operator.Addr, DefaultOperatorAddr)
		}
	}
	f.Operator.TokenFile = d.abs(f.Operator.TokenFile)
	d.operators(&f.Operator)
	f.DataDir = d.abs(f.DataDir)
	d.mesh(&f.Mesh, f.Agents)

	names := map[string]string{} // agent name → key of its first use
	var embed Embeddings         // the first agent's memory.embeddings, at embedKey
	var embedKey string
	var minFree ByteSize // the first agent's memory.min_free, at minFreeKey
	var minFreeKey string
	for i := range f.Agents {
		p := ""
		if fleet {
			p = fmt.Sprintf("agents[%d]", i)
		}
		a := &f.Agents[i]
		d.agent(p, a)
		if a.Name == "" {
			continue
		}
		if first, dup := names[a.Name]; dup {
			d.errAt(join(p, "name"), "duplicate agent name %q (first at line %d)", a.Name, d.lines[first])
		} else {
			names[a.Name] = join(p, "name")
		}
		if e := a.Memory.Embeddings; e.BaseURL != "" {
			key := join(p, "memory.embeddings")
			if embedKey == "" {
				embedKey, embed = key, e
			} else if e != embed {
				d.errAt(key, "differs from the memory.embeddings at line %d (the fleet shares one recall index, so one embeddings endpoint)", d.lines[embedKey])
			}
		}
		if a.Memory.MinFree != 0 {
			key := join(p, "memory.min_free")
			if minFreeKey == "" {
				minFreeKey, minFree = key, a.Memory.MinFree
			} else if a.Memory.MinFree != minFree {
				d.errAt(key, "%s differs from the memory.min_free %s at line %d (the fleet shares one store, so one threshold)", a.Memory.MinFree, minFree, d.lines[minFreeKey])
			}
		}
	}
}

func (d *decoder) agent(p string, a *Agent) {
	switch {
	case a.Name == "":
		d.errorf(d.lines[p], join(p, "name"), "missing agent name")
	case !validName(a.Name):
		d.errAt(join(p, "name"), "invalid name %q (expected up to 64 letters, digits, '-' or '_', starting with a letter or digit)", a.Name)
	}
	if a.Role == "" {
		a.Role = RoleDigital
	}
	if a.Memory.Profile == "" {
		a.Memory.Profile = ProfileDefault
	}
	d.namespaces(join(p, "memory.read"), a.Memory.Read)
	d.namespaces(join(p, "memory.write"), a.Memory.Write)
	own := []string{"agent/" + a.Name, "shared"}
	if a.Memory.Read == nil {
		a.Memory.Read = own
	}
	if a.Memory.Write == nil {
		a.Memory.Write = own
	}
	if a.Limits.ModelCalls == 0 {
		a.Limits.ModelCalls = DefaultModelCalls
	}
	if a.Limits.ToolCalls == 0 {
		a.Limits.ToolCalls = DefaultToolCalls
	}
	if a.Limits.WallTime == 0 {
		a.Limits.WallTime = DefaultWallTime
	}
	if a.Limits.Tokens == 0 {
		a.Limits.Tokens = DefaultTokens
	}
	if a.Limits.Depth == 0 {
		a.Limits.Depth = DefaultDepth
	}
	if a.Limits.Inbox == 0 {
		a.Limits.Inbox = DefaultInbox
	}
	if a.Limits.Concurrency == 0 {
		a.Limits.Concurrency = DefaultConcurrency
	}
	if a.Safety.ApprovalTimeout == 0 {
		a.Safety.ApprovalTimeout = DefaultApproval
	}
	d.money(p, a)
	for key, grants := range map[string][]string{"memory.read": a.Memory.Read, "memory.write": a.Memory.Write} {
		for _, ns := range grants {
			if memory.Within(ns, auditNamespace) {
				d.errAt(join(p, key), "namespace %q is reserved for the audit log, which only depai itself writes (read it with /audit or depai audit verify)", ns)
			}
		}
	}

	if a.Model.Timeout == 0 {
		a.Model.Timeout = DefaultModelTimeout
	}
	if a.Model.FirstByteTimeout == 0 {
		a.Model.FirstByteTimeout = DefaultFirstByteTimeout
	}
	d.model(join(p, "model"), &a.Model)
	d.embeddings(join(p, "memory.embeddings"), a.Memory.Embeddings)
	d.names(join(p, "tools"), a.Tools, "tool")
	d.names(join(p, "operators"), a.Operators, "operator")

	plugins := map[string]string{}
	for i := range a.Plugins {
		pp := fmt.Sprintf("%s[%d]", join(p, "plugins"), i)
		pl := &a.Plugins[i]
		d.plugin(pp, pl)
		d.withinAgent(pp, a, pl)
		if pl.Name == "" {
			continue
		}
		if first, dup := plugins[pl.Name]; dup {
			d.errAt(join(pp, "name"), "duplicate plugin name %q (first at line %d)", pl.Name, d.lines[first])
		} else {
			plugins[pl.Name] = join(pp, "name")
			if _, ok := d.lines[join(pp, "name")]; !ok {
				d.lines[join(pp, "name")] = d.lines[join(pp, "path")]
			}
		}
	}

	for i, m := range a.MCP {
		mp := fmt.Sprintf("%s[%d]", join(p, "mcp"), i)
		if m.Name != "" && !validName(m.Name) {
			d.errAt(join(mp, "name"), "invalid name %q (expected up to 64 letters, digits, '-' or '_')", m.Name)
		}
		switch {
		case len(m.Command) > 0 && m.URL != "":
			d.errAt(mp, "give command or url, not both")
		case len(m.Command) == 0 && m.URL == "":
			d.errAt(mp, "missing command (a program speaking MCP on stdio) or url (a Streamable HTTP endpoint)")
		case m.URL != "":
			if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.errAt(join(mp, "url"), "invalid URL %q (expected http:// or https:// and a host)", m.URL)
			}
		}
		for name, env := range m.Env {
			if !envRE().MatchString(name) || !envRE().MatchString(env) {
				d.errAt(join(mp, "env"), "%s: %s: expected NAME: ENV_VAR (the variable that holds the value)", name, env)
			}
		}
	}
	tools := map[string]string{}
	for i, r := range a.Safety.Actuators {
		rp := fmt.Sprintf("%s[%d]", join(p, "safety.actuators"), i)
		if first, dup := tools[r.Tool]; dup && r.Tool != "" {
			d.errAt(join(rp, "tool"), "tool %q already has a rule (at line %d); put all of a tool's limits in one rule", r.Tool, d.lines[first])
		}
		tools[r.Tool] = join(rp, "tool")
		for j, z := range r.KeepOut {
			zp := fmt.Sprintf("%s[%d]", join(rp, "keep_out"), j)
			switch {
			case len(z.Polygon) > 0 && z.RadiusM > 0:
				d.errAt(zp, "zone %q has both radius_m and polygon (give one: a circle or a polygon)", z.Name)
			case len(z.Polygon) > 0:
				d.polygon(join(zp, "polygon"), z.Polygon)
			case z.RadiusM == 0:
				d.errAt(zp, "zone %q has neither radius_m (with lat and lon) nor polygon", z.Name)
			}
		}
		if r.MaxRate != "" {
			if _, _, err := r.Rate(); err != nil {
				d.errAt(join(rp, "max_rate"), "%v", err)
			}
		}
	}
	if g := a.Safety.Motion.Geofence; len(g) > 0 {
		d.polygon(join(p, "safety.motion.geofence"), g)
	}
	for i, c := range a.Safety.AgentCalls {
		cp := fmt.Sprintf("%s[%d]", join(p, "safety.agent_calls"), i)
		if c.From != "" && c.From != "*" && !validName(c.From) {
			d.errAt(join(cp, "from"), "invalid agent name %q (expected an agent's name, or \"*\" for any fleet agent)", c.From)
		}
		if len(c.Tools) == 0 {
			d.errAt(cp, "no tools (expected tools: [NAME, …]; a name may end in \"*\"; to allow nothing, leave the agent out)")
		}
		for _, t := range c.Tools {
			if base := strings.TrimSuffix(t, "*"); base == "" && t != "*" || strings.Contains(base, "*") {
				d.errAt(join(cp, "tools"), "invalid tool %q (expected a tool's name, or a prefix ending in \"*\" such as \"robot.*\")", t)
			}
		}
	}
	for i, w := range a.Wake {
		wp := fmt.Sprintf("%s[%d]", join(p, "wake"), i)
		if w.Namespace == "" {
			continue // reported as a missing required key
		}
		d.namespaces(join(wp, "namespace"), []string{w.Namespace})
		if !memory.Granted(a.Memory.Read, w.Namespace) {
			d.errAt(join(wp, "namespace"), "namespace %q is not within memory.read (%s)", w.Namespace, strings.Join(a.Memory.Read, ", "))
		}
	}
	for i, s := range a.Schedule {
		sp := fmt.Sprintf("%s[%d]", join(p, "schedule"), i)
		if s.Every <= 0 {
			d.errorf(d.lines[sp], join(sp, "every"), "missing interval (expected a duration such as \"10m\")")
		}
		if strings.TrimSpace(s.Input) == "" {
			d.errorf(d.lines[sp], join(sp, "input"), "missing input (the message the agent receives each time)")
		}
	}
}

// operators checks the named operators: valid, unique names (not the
// generated token's), one token source each.
func (d *decoder) operators(o *Operator) {
	names := map[string]string{GeneratedOperator: ""}
	for i := range o.Operators {
		p := fmt.Sprintf("operator.operators[%d]", i)
		op := &o.Operators[i]
		switch first, dup := names[op.Name]; {
		case op.Name == "":
		case !validName(op.Name):
			d.errAt(join(p, "name"), "invalid name %q (expected up to 64 letters, digits, '-' or '_', starting with a letter or digit)", op.Name)
		case dup && first == "":
			d.errAt(join(p, "name"), "name %q is the generated token's admin (operator.token_file); pick another", op.Name)
		case dup:
			d.errAt(join(p, "name"), "duplicate operator name %q (first at line %d)", op.Name, d.lines[first])
		default:
			names[op.Name] = join(p, "name")
		}
		switch {
		case op.TokenFile == "" && op.TokenEnv == "":
			d.errorf(d.lines[p], p, "missing token_file or token_env (where operator %q's token is)", op.Name)
		case op.TokenFile != "" && op.TokenEnv != "":
			d.errAt(join(p, "token_env"), "both token_file and token_env are set; keep one")
		case op.TokenEnv != "" && !envRE().MatchString(op.TokenEnv):
			d.errAt(join(p, "token_env"), "invalid environment variable name %q (the name of the variable, not the token itself)", op.TokenEnv)
		}
		op.TokenFile = d.abs(op.TokenFile)
	}
}

// polygon checks a list of [lat, lon] points that encloses an area.
func (d *decoder) polygon(p string, pts [][]float64) {
	if len(pts) < 3 {
		d.errAt(p, "a polygon needs at least 3 points, got %d (expected [[lat, lon], [lat, lon], [lat, lon], …])", len(pts))
		return
	}
	for i, q := range pts {
		if len(q) != 2 || q[0] < -90 || q[0] > 90 || q[1] < -180 || q[1] > 180 {
			d.errAt(fmt.Sprintf("%s[%d]", p, i), "point %v: expected [lat, lon] with lat in -90..90 and lon in -180..180", q)
		}
	}
}

func (d *decoder) model(p string, m *Model) {
	if m.BaseURL != "" {
		u, err := url.Parse(m.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.errAt(join(p, "base_url"), "invalid URL %q (expected http:// or https:// and a host, such as \"http://127.0.0.1:11434/v1\")", m.BaseURL)
		}
	}
	if m.APIKeyEnv != "" && !envRE().MatchString(m.APIKeyEnv) {
		d.errAt(join(p, "api_key_env"), "invalid environment variable name %q (the name of the variable, not the key itself)", m.APIKeyEnv)
	}
}

func (d *decoder) embeddings(p string, e Embeddings) {
	if e == (Embeddings{}) {
		return
	}
	d.model(p, &Model{BaseURL: e.BaseURL, APIKeyEnv: e.APIKeyEnv})
	if e.BaseURL == "" {
		d.errAt(p, "missing base_url (the OpenAI-compatible endpoint, such as \"http://127.0.0.1:11434/v1\")")
	}
	if e.Model == "" {
		d.errAt(p, "missing model (the embedding model's name, such as \"nomic-embed-text\")")
	}
}

func (d *decoder) plugin(p string, pl *Plugin) {
	if pl.Path == "" {
		if _, present := d.lines[join(p, "path")]; present {
			d.errAt(join(p, "path"), "empty path")
		}
		return
	}
	pl.Path = d.abs(pl.Path)
	if pl.Name == "" {
		pl.Name = strings.TrimSuffix(filepath.Base(pl.Path), filepath.Ext(pl.Path))
	}
	if !validName(pl.Name) {
		key := join(p, "name")
		if _, ok := d.lines[key]; !ok {
			key = join(p, "path")
		}
		d.errAt(key, "invalid plugin name %q (expected up to 64 letters, digits, '-' or '_'; set name: explicitly)", pl.Name)
	}
	switch transport, dir, err := inferTransport(pl.Path); {
	case err != nil:
		d.errAt(join(p, "path"), "%v", err)
	case pl.Transport == "" && transport == TransportProcess:
		// Native code is never run because of what a file looks like: the
		// operator says so, once, in the config.
		d.errAt(join(p, "path"), "%s is a native executable: a process plugin runs native code, confined by the kernel but not sandboxed like WASM; add \"transport: process\" to this plugin to load it", pl.Path)
	case pl.Transport == "":
		pl.Transport = transport
	case transport == TransportWASM && pl.Transport == TransportProcess && !dir:
		d.errAt(join(p, "transport"), "%s is a WASM module, not a process plugin", pl.Path)
	case transport == TransportProcess && pl.Transport == TransportWASM:
		d.errAt(join(p, "transport"), "%s is not a WASM module (no \\0asm header)", pl.Path)
	}
	// A plugin reads files by the paths its config gives; ${config_dir}
	// lets the config name one beside itself, as paths of its own are.
	for k, v := range pl.Config {
		pl.Config[k] = strings.ReplaceAll(v, ConfigDirVar, d.abs("."))
	}
	if pl.SHA256 != "" {
		if b, err := hex.DecodeString(pl.SHA256); err != nil || len(b) != 32 {
			d.errAt(join(p, "sha256"), "invalid SHA-256 %q (expected 64 hex digits)", pl.SHA256)
		}
		pl.SHA256 = strings.ToLower(pl.SHA256)
	}
	g := join(p, "grants")
	d.namespaces(join(g, "memory_read"), pl.Grants.MemoryRead)
	d.namespaces(join(g, "memory_write"), pl.Grants.MemoryWrite)
	d.names(join(g, "http"), pl.Grants.HTTP, "host")
	d.names(join(g, "emit"), pl.Grants.Emit, "topic")
	d.names(join(g, "config"), pl.Grants.Config, "config key")
	d.names(join(g, "secrets"), pl.Grants.Secrets, "secret")
	for i, s := range pl.Grants.Secrets {
		if _, ok := pl.Secrets[s]; !ok && s != "" {
			d.errAt(fmt.Sprintf("%s[%d]", join(g, "secrets"), i), "secret %q is granted but not defined under %s", s, join(p, "secrets"))
		}
	}
	for i := range pl.Grants.Files {
		f := &pl.Grants.Files[i]
		fp := fmt.Sprintf("%s[%d]", join(g, "files"), i)
		if f.Path == "" {
			d.errAt(fp, "missing path")
		}
		f.Path = d.abs(f.Path)
		if f.Mode == "" {
			f.Mode = wire.FileRO
		}
		if f.Mode != wire.FileRO && f.Mode != wire.FileRW {
			d.errAt(join(fp, "mode"), "unknown mode %q (expected ro or rw)", f.Mode)
		}
	}
	d.names(join(g, "net"), pl.Grants.Net, "net destination")
	for i, n := range pl.Grants.Net {
		h, port, err := net.SplitHostPort(n)
		if v, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || v == 0 || h == "" {
			d.errAt(fmt.Sprintf("%s[%d]", join(g, "net"), i), "invalid destination %q (expected host:port, such as \"127.0.0.1:2947\")", n)
		}
	}
	if (len(pl.Grants.Files) > 0 || len(pl.Grants.Net) > 0) && pl.Transport == TransportWASM {
		d.errAt(g, "files and net grants confine process plugins; a WASM plugin has no files or sockets (it reaches the network through http.fetch)")
	}
	for i, f := range pl.UnconfinedOK {
		if !slices.Contains(wire.ConfineFeatures, f) {
			d.errAt(fmt.Sprintf("%s[%d]", join(p, "unconfined_ok"), i), "unknown confinement feature %q (expected one of %s)", f, strings.Join(wire.ConfineFeatures, ", "))
		}
	}
	for name, env := range pl.Secrets {
		if !envRE().MatchString(env) {
			d.errAt(join(join(p, "secrets"), name), "invalid environment variable name %q (the name of the variable holding the secret, not the secret)", env)
		}
	}
}

// withinAgent refuses a plugin grant its agent does not hold itself: a
// plugin acts for its agent, never beyond it.
func (d *decoder) withinAgent(p string, a *Agent, pl *Plugin) {
	check := func(field, agentField string, plugin, agent []string) {
		for i, ns := range plugin {
			if !memory.Granted(agent, ns) {
				d.errAt(fmt.Sprintf("%s[%d]", join(p, "grants."+field), i), "namespace %q is not within the agent's %s (%s): a plugin is never granted more than its agent %q holds",
					ns, agentField, strings.Join(agent, ", "), a.Name)
			}
		}
	}
	check("memory_read", "memory.read", pl.Grants.MemoryRead, a.Memory.Read)
	check("memory_write", "memory.write", pl.Grants.MemoryWrite, a.Memory.Write)
}

// inferTransport looks at the file: a WASM module or a native executable,
// told apart by its first bytes as the host tells them (wire.KindOf), or a
// Go package directory (built by the host; WASM by default).
func inferTransport(path string) (transport string, dir bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", false, fmt.Errorf("%s: no such file or directory", path)
		}
		return "", false, err
	}
	if fi.IsDir() {
		return TransportWASM, true, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer fh.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(fh, head)
	switch wire.KindOf(head[:n]) {
	case wire.TransportWASM:
		return TransportWASM, false, nil
	case wire.TransportProcess:
		if fi.Mode()&0o111 == 0 {
			return "", false, fmt.Errorf("%s is a native program without execute permission (chmod +x it)", path)
		}
		return TransportProcess, false, nil
	}
	return "", false, fmt.Errorf("%s is neither a WASM module nor an executable", path)
}

// names checks a list of identifiers: none empty, none repeated.
func (d *decoder) names(p string, list []string, what string) {
	seen := map[string]int{}
	for i, s := range list {
		key := fmt.Sprintf("%s[%d]", p, i)
		if strings.TrimSpace(s) == "" {
			d.errAt(key, "empty %s name", what)
			continue
		}
		if first, dup := seen[s]; dup {
			d.errAt(key, "duplicate %s %q (also %s[%d])", what, s, p, first)
			continue
		}
		seen[s] = i
	}
}

func (d *decoder) namespaces(p string, list []string) {
	for i, ns := range list {
		if memory.CheckNamespace(ns) != nil {
			d.errAt(fmt.Sprintf("%s[%d]", p, i), "invalid namespace %q (expected \"/\"-separated names such as \"agent/scout\" or \"shared\")", ns)
		}
	}
}

// abs resolves a path against the config file's directory.
func (d *decoder) abs(path string) string {
	if path == "" {
		return ""
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(d.dir, path)
	}
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return filepath.Clean(path)
}

// Rate parses MaxRate: at most n calls per period.
func (r ActuatorRule) Rate() (n float64, per time.Duration, err error) {
	m := rateRE().FindStringSubmatch(r.MaxRate)
	if m == nil {
		return 0, 0, fmt.Errorf("invalid rate %q (expected calls per period, such as \"2/s\", \"30/min\" or \"100/h\")", r.MaxRate)
	}
	n, _ = strconv.ParseFloat(m[1], 64)
	if n <= 0 {
		return 0, 0, fmt.Errorf("invalid rate %q (must be positive)", r.MaxRate)
	}
	per = map[string]time.Duration{"s": time.Second, "min": time.Minute, "h": time.Hour}[m[2]]
	return n, per, nil
}
