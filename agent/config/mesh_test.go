package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/depai/depai/agent/config"
)

func TestMeshDefaults(t *testing.T) {
	f, err := config.Parse("fleet.yaml", []byte("agents: [{name: a}, {name: b}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Mesh.Mode != config.MeshEmbedded || !f.Mesh.On() || f.NodeName() != "node-a" {
		t.Errorf("mesh = %+v, node %q; want embedded, on, node-a", f.Mesh, f.NodeName())
	}
	f, err = config.Parse("agent.yaml", []byte("name: a\nmesh: {mode: hub, name: base, shared: [site], leaf_nodes: [did:key:z6MkExample]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Mesh.LeafListen != config.DefaultLeafListen || f.NodeName() != "base" || f.Mesh.Shared[0] != "site" {
		t.Errorf("hub mesh = %+v; want leaf_listen %s, name base, shared [site]", f.Mesh, config.DefaultLeafListen)
	}
	if f, err = config.Parse("a.yaml", []byte("name: a\nmesh: {mode: off}\n")); err != nil || f.Mesh.On() {
		t.Errorf("mode off: %+v, %v; want off", f, err)
	}
}

func TestMeshFilesResolve(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ca.pem", "leaf.creds"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := filepath.Join(dir, "fleet.yaml")
	f, err := config.Parse(name, []byte("agents: [{name: a}]\nmesh: {mode: external, urls: [\"tls://127.0.0.1:4222\"], credentials: leaf.creds, tls: {ca: ca.pem}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Mesh.Credentials != filepath.Join(dir, "leaf.creds") || f.Mesh.TLS.CA != filepath.Join(dir, "ca.pem") {
		t.Errorf("paths = %q, %q; want them resolved against %s", f.Mesh.Credentials, f.Mesh.TLS.CA, dir)
	}
}

func TestMeshErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown mode", "name: a\nmesh:\n  mode: cluster\n",
			`fleet.yaml:3: mesh.mode: unknown value "cluster" (expected embedded or hub or leaf or external or off)`},
		{"typo", "name: a\nmesh:\n  hubs: []\n",
			`fleet.yaml:3: mesh.hubs: unknown key (did you mean "hub"?)`},
		{"leaf without hub", "name: a\nmesh:\n  mode: leaf\n",
			`fleet.yaml:3: mesh.hub: mode leaf needs hub: the hub's leaf URLs, such as ["nats-leaf://127.0.0.1:7422"]`},
		{"bad hub url", "name: a\nmesh:\n  mode: leaf\n  hub: [\"127.0.0.1:7422\"]\n",
			`fleet.yaml:4: mesh.hub[0]: invalid hub URL "127.0.0.1:7422" (expected nats-leaf://host:port)`},
		{"external without urls", "name: a\nmesh: {mode: external}\n",
			`fleet.yaml:2: mesh.urls: mode external needs urls: the cluster's nats:// or tls:// URLs`},
		{"listen off loopback", "name: a\nmesh:\n  listen: 0.0.0.0:4222\n",
			`fleet.yaml:3: mesh.listen: address "0.0.0.0:4222" is not on loopback: only this process's agents connect here (other machines join through a hub's leaf_listen)`},
		{"listen malformed", "name: a\nmesh:\n  listen: 4222\n",
			`fleet.yaml:3: mesh.listen: expected a string, got integer "4222" (quote it to make it a string)`},
		{"hub key on embedded", "name: a\nmesh:\n  hub: [\"nats-leaf://127.0.0.1:7422\"]\n",
			`fleet.yaml:3: mesh.hub: applies to mode leaf only, and mode is embedded`},
		{"leaf_nodes not a did", "name: a\nmesh:\n  mode: hub\n  leaf_nodes: [UABC]\n",
			`fleet.yaml:4: mesh.leaf_nodes[0]: "UABC" is not a did:key (expected did:key:z…, as ` + "`depai id show`" + ` prints on the leaf)`},
		{"shared audit", "name: a\nmesh:\n  shared: [fleet, audit]\n",
			`fleet.yaml:3: mesh.shared[1]: namespace "audit" holds the audit log, which stays on its node`},
		{"shared twice", "name: a\nmesh:\n  shared: [fleet, fleet]\n",
			`fleet.yaml:3: mesh.shared[1]: duplicate namespace "fleet" (also mesh.shared[0])`},
		{"bad namespace", "name: a\nmesh:\n  shared: [\"/x\"]\n",
			`fleet.yaml:3: mesh.shared[0]: invalid namespace "/x" (expected "/"-separated names such as "fleet" or "site/readings")`},
		{"node named like an agent", "name: a\nmesh:\n  name: a\n",
			`fleet.yaml:3: mesh.name: node name "a" is also an agent's name; nodes and agents share one name space in the fleet`},
		{"cert without key", "name: a\nmesh:\n  mode: external\n  urls: [\"tls://127.0.0.1:1\"]\n  tls: {cert: /nonexistent/c.pem}\n",
			"fleet.yaml:5: mesh.tls: cert and key go together: set both or neither\nfleet.yaml:5: mesh.tls.cert: stat /nonexistent/c.pem: no such file or directory"},
		{"above without inspect", "name: a\nwake:\n  - namespace: shared\n    above: {field: t, value: 1}\n",
			`fleet.yaml:4: wake[0].above: above needs inspect: it says which records start the reflex, inspect says what it does`},
		{"inspect with the mesh off", "agents:\n  - name: a\n    wake:\n      - namespace: shared\n        inspect: {tool: drive.to}\nmesh: {mode: off}\n",
			`fleet.yaml:5: agents[0].wake[0].inspect: delegates a task over the mesh, and mesh.mode is off`},
		{"inspect without tool", "name: a\nwake:\n  - namespace: shared\n    inspect: {role: robot}\n",
			`fleet.yaml:4: wake[0].inspect: missing required key "tool"`},
		{"missing creds file", "name: a\nmesh:\n  mode: external\n  urls: [\"nats://127.0.0.1:1\"]\n  credentials: /nonexistent/x.creds\n",
			`fleet.yaml:5: mesh.credentials: stat /nonexistent/x.creds: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("fleet.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}
