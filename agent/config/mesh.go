package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/depai/depai/memory"
)

// Mesh modes: how a node reaches the fleet's NATS.
const (
	MeshEmbedded = "embedded" // a NATS server with JetStream in this process (the default)
	MeshHub      = "hub"      // embedded, and accepting leaf nodes on leaf_listen
	MeshLeaf     = "leaf"     // a leaf node of a hub: keeps working while its link is down
	MeshExternal = "external" // an existing NATS cluster with JetStream
	MeshOff      = "off"      // no fleet beyond this process
)

// DefaultLeafListen is where a hub accepts leaf nodes when leaf_listen is
// not set (NATS's usual leaf port, on loopback).
const DefaultLeafListen = "127.0.0.1:7422"

// Mesh is the top-level mesh: section — how this process joins the fleet
// on NATS. All of it is optional: `depai run` starts an embedded node when
// the section is absent.
type Mesh struct {
	Mode string `yaml:"mode" check:"oneof=embedded|hub|leaf|external|off"` // default embedded
	// Name names this node in the fleet (a NATS subject token); default
	// "node-" followed by the first agent's name.
	Name string `yaml:"name"`
	// Listen is the embedded server's client address; loopback only, as the
	// agents of this process are its only clients. Default 127.0.0.1 with a
	// free port.
	Listen string `yaml:"listen"`
	// LeafListen (hub) is where leaf nodes connect, host:port; default
	// DefaultLeafListen. Another machine's leaf needs a reachable host here.
	LeafListen string `yaml:"leaf_listen"`
	// LeafNodes (hub) are the did:keys of the leaf nodes it accepts
	// (`depai id show NODE` on the leaf prints one).
	LeafNodes []string `yaml:"leaf_nodes"`
	// Hub (leaf) is the hub's leaf URLs, nats-leaf://host:port.
	Hub []string `yaml:"hub"`
	// URLs (external) is the cluster: nats:// or tls:// URLs.
	URLs []string `yaml:"urls"`
	// Credentials (external) is a NATS .creds file; without it each agent
	// authenticates with its own nkey. Relative to the config file.
	Credentials string `yaml:"credentials"`
	// TLS is the client side of the link: a hub's leaf port (leaf) or the
	// cluster (external); for a hub, the certificate its leaf port serves.
	TLS MeshTLS `yaml:"tls"`
	// Members are did:keys trusted besides the registry's cards.
	Members []string `yaml:"members"`
	// Shared lists the memory namespaces (each with everything below it)
	// that replicate to every node of the fleet.
	Shared []string `yaml:"shared"`
}

// MeshTLS names PEM files, relative to the config file (absolute after Load).
type MeshTLS struct {
	CA   string `yaml:"ca"`   // the CA that signed the other side's certificate
	Cert string `yaml:"cert"` // this side's certificate (with key)
	Key  string `yaml:"key"`
}

// Threshold selects records by a number in their data.
type Threshold struct {
	Field string  `yaml:"field" check:"required"` // a top-level key of the record's data
	Value float64 `yaml:"value"`
}

// Inspect is a wake's reflex: delegate a task to the nearest agent of Role
// that calls Tool with the record's lat and lon (and Speed, when set)
// through that agent's own policy. The task's result is the tool's answer
// and the robot's pose; the delegator stores it in its namespace.
type Inspect struct {
	Role  string  `yaml:"role" check:"oneof=robot|digital"` // default robot
	Tool  string  `yaml:"tool" check:"required"`            // such as drive.to
	Speed float64 `yaml:"speed" check:"nonneg"`
}

// On reports whether the mesh runs: unless mode is off.
func (m Mesh) On() bool { return m.Mode != MeshOff }

// NodeName is the node's name: name, else "node-" and the first agent's.
func (f *File) NodeName() string {
	if f.Mesh.Name != "" {
		return f.Mesh.Name
	}
	return "node-" + f.Agents[0].Name
}

// mesh checks the mesh section and applies its defaults.
func (d *decoder) mesh(m *Mesh, agents []Agent) {
	const p = "mesh"
	if m.Mode == "" {
		m.Mode = MeshEmbedded
	}
	if m.Name != "" && !validName(m.Name) {
		d.errAt(p+".name", "invalid node name %q (expected up to 64 letters, digits, '-' or '_', starting with a letter or digit)", m.Name)
	}
	for _, a := range agents {
		if m.Name != "" && a.Name == m.Name {
			d.errAt(p+".name", "node name %q is also an agent's name; nodes and agents share one name space in the fleet", m.Name)
		}
	}
	if m.Listen != "" {
		host, port, err := net.SplitHostPort(m.Listen)
		ip := net.ParseIP(host)
		switch {
		case err != nil || port == "":
			d.errAt(p+".listen", "invalid address %q (expected host:port on loopback, such as \"127.0.0.1:4222\")", m.Listen)
		case host != "localhost" && (ip == nil || !ip.IsLoopback()):
			d.errAt(p+".listen", "address %q is not on loopback: only this process's agents connect here (other machines join through a hub's leaf_listen)", m.Listen)
		}
	}
	want := func(key string, ok bool, why string) {
		if !ok {
			d.errAt(p+"."+key, "%s", why)
		}
	}
	switch m.Mode {
	case MeshHub:
		if m.LeafListen == "" {
			m.LeafListen = DefaultLeafListen
		}
		if _, port, err := net.SplitHostPort(m.LeafListen); err != nil || port == "" {
			d.errAt(p+".leaf_listen", "invalid address %q (expected host:port, such as %q)", m.LeafListen, DefaultLeafListen)
		}
	case MeshLeaf:
		if len(m.Hub) == 0 {
			d.errorf(d.lines[p], p+".hub", "mode leaf needs hub: the hub's leaf URLs, such as [\"nats-leaf://127.0.0.1:7422\"]")
		}
		for i, h := range m.Hub {
			u, err := url.Parse(h)
			want(fmt.Sprintf("hub[%d]", i), err == nil && u.Host != "" && (u.Scheme == "nats-leaf" || u.Scheme == "nats" || u.Scheme == "tls"),
				fmt.Sprintf("invalid hub URL %q (expected nats-leaf://host:port)", h))
		}
	case MeshExternal:
		if len(m.URLs) == 0 {
			d.errorf(d.lines[p], p+".urls", "mode external needs urls: the cluster's nats:// or tls:// URLs")
		}
		for i, s := range m.URLs {
			u, err := url.Parse(s)
			want(fmt.Sprintf("urls[%d]", i), err == nil && u.Host != "" && (u.Scheme == "nats" || u.Scheme == "tls"),
				fmt.Sprintf("invalid URL %q (expected nats://host:port or tls://host:port)", s))
		}
	}
	only := func(key string, set bool, modes ...string) {
		if set && !slices.Contains(modes, m.Mode) {
			d.errAt(p+"."+key, "applies to mode %s only, and mode is %s", strings.Join(modes, " or "), m.Mode)
		}
	}
	only("leaf_listen", m.LeafListen != "", MeshHub)
	only("leaf_nodes", len(m.LeafNodes) > 0, MeshHub)
	only("hub", len(m.Hub) > 0, MeshLeaf)
	only("urls", len(m.URLs) > 0, MeshExternal)
	only("credentials", m.Credentials != "", MeshExternal)
	only("listen", m.Listen != "", MeshEmbedded, MeshHub, MeshLeaf)
	for i, did := range m.LeafNodes {
		want(fmt.Sprintf("leaf_nodes[%d]", i), strings.HasPrefix(did, "did:key:z"), fmt.Sprintf("%q is not a did:key (expected did:key:z…, as `depai id show` prints on the leaf)", did))
	}
	for i, did := range m.Members {
		want(fmt.Sprintf("members[%d]", i), strings.HasPrefix(did, "did:key:z"), fmt.Sprintf("%q is not a did:key (expected did:key:z…)", did))
	}
	for i, ns := range m.Shared {
		key := fmt.Sprintf("%s.shared[%d]", p, i)
		switch {
		case memory.CheckNamespace(ns) != nil:
			d.errAt(key, "invalid namespace %q (expected \"/\"-separated names such as \"fleet\" or \"site/readings\")", ns)
		case memory.Within(ns, auditNamespace):
			d.errAt(key, "namespace %q holds the audit log, which stays on its node", ns)
		}
	}
	d.names(p+".shared", m.Shared, "namespace")
	if (m.TLS.Cert == "") != (m.TLS.Key == "") {
		d.errAt(p+".tls", "cert and key go together: set both or neither")
	}
	if m.Mode == MeshHub && m.TLS.CA != "" && m.TLS.Cert == "" {
		d.errAt(p+".tls", "a hub serves its leaf port with cert and key; ca alone does not say which certificate to serve")
	}
	for i := range agents {
		for j := range agents[i].Wake {
			w := &agents[i].Wake[j]
			key := fmt.Sprintf("agents[%d].wake[%d]", i, j)
			if _, ok := d.lines[key]; !ok {
				key = fmt.Sprintf("wake[%d]", j) // a single-agent file
			}
			if w.Above != nil && w.Inspect == nil {
				d.errAt(key+".above", "above needs inspect: it says which records start the reflex, inspect says what it does")
			}
			if w.Inspect == nil {
				continue
			}
			if w.Inspect.Role == "" {
				w.Inspect.Role = RoleRobot
			}
			if !m.On() {
				d.errAt(key+".inspect", "delegates a task over the mesh, and mesh.mode is off")
			}
		}
	}
	m.Credentials = d.abs(m.Credentials)
	m.TLS.CA, m.TLS.Cert, m.TLS.Key = d.abs(m.TLS.CA), d.abs(m.TLS.Cert), d.abs(m.TLS.Key)
	for _, f := range []struct{ key, path string }{{"credentials", m.Credentials}, {"tls.ca", m.TLS.CA}, {"tls.cert", m.TLS.Cert}, {"tls.key", m.TLS.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			d.errAt(p+"."+f.key, "%v", err)
		}
	}
}
