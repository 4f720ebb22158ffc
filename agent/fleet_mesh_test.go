package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/mesh"
	"github.com/depai/depai/agent/metrics"
	"github.com/depai/depai/agent/tool"
)

// meshFleet opens the fleet of yaml in dir with the mesh on.
func meshFleet(t testing.TB, dir, yaml string, tools map[string][]tool.Tool, m ...*metrics.Metrics) *agent.Fleet {
	t.Helper()
	path := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"), CacheDir: sharedCache, Mesh: &agent.MeshOptions{}, Tools: tools, Metrics: firstOr(m)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return f
}

func firstOr(m []*metrics.Metrics) *metrics.Metrics {
	if len(m) == 0 {
		return nil
	}
	return m[0]
}

// linkProxy is the network between a leaf and its hub: a TCP relay on
// loopback that the test can cut (every connection closed, the port
// refusing) and restore on the same port.
type linkProxy struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newLinkProxy(t testing.TB, target string) *linkProxy {
	p := &linkProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *linkProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every relayed connection.
func (p *linkProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens on the same port again.
func (p *linkProxy) restore() {
	var ln net.Listener
	var err error
	for range 50 { // the port was just closed; it is ours to take again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// inspections is an in-process tool standing in for a robot's drive: it
// records where it was sent.
type inspections struct {
	mu   sync.Mutex
	args []map[string]float64
}

func (in *inspections) tool(t testing.TB) tool.Tool {
	tl, err := tool.New("inspect.here", "Go to lat, lon and look.", tool.EffectNone,
		func(_ context.Context, a map[string]float64) (map[string]string, error) {
			in.mu.Lock()
			in.args = append(in.args, a)
			in.mu.Unlock()
			return map[string]string{"seen": "a warm pipe"}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func (in *inspections) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.args)
}

func command(t *testing.T, a *agent.Agent, text string) agent.Event {
	t.Helper()
	evs := events(t, a, agent.Input{Text: text})
	return evs[len(evs)-1]
}

func tasksOf(t *testing.T, a *agent.Agent) []agent.TaskInfo {
	t.Helper()
	ev := command(t, a, "/tasks")
	if ev.Type != agent.EventReply {
		t.Fatalf("/tasks: %+v", ev)
	}
	var r struct {
		Tasks []agent.TaskInfo `json:"tasks"`
	}
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		t.Fatal(err)
	}
	return r.Tasks
}

func doneTasks(t *testing.T, a *agent.Agent) int {
	n := 0
	for _, ti := range tasksOf(t, a) {
		if ti.State == string(mesh.TaskDone) {
			n++
		}
	}
	return n
}

// dispatcherYAML is an agent whose wake on shared namespace "site" is a
// reflex that sends the nearest robot to a reading over 60.
const dispatcherYAML = `  - name: dispatcher
    memory: {read: [agent/dispatcher, site], write: [agent/dispatcher, site]}
    wake:
      - namespace: site
        kinds: [reading]
        above: {field: temp_c, value: 60}
        inspect: {role: robot, tool: inspect.here, speed: 1}
`

// hubAndLeaf starts two fleets: a hub with the dispatcher and a leaf with
// a rover, its link to the hub through a proxy the test can cut. Shared
// namespace "site" replicates; the dispatcher's wake on it is a reflex
// that sends the nearest robot to a reading over 60.
func hubAndLeaf(t testing.TB, insp *inspections, m ...*metrics.Metrics) (hub, leaf *agent.Fleet, link *linkProxy) {
	t.Helper()
	hubDir, leafDir := t.TempDir(), t.TempDir()
	path, _ := identity.KeyPath(filepath.Join(leafDir, "data"), "leaf")
	leafKey, _, err := identity.LoadOrCreate(identity.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	leafListen := freeAddr(t)
	hub = meshFleet(t, hubDir, fmt.Sprintf(`
mesh: {mode: hub, name: hub, leaf_listen: %q, leaf_nodes: [%s], shared: [site]}
agents:
`, leafListen, leafKey.DID())+dispatcherYAML, nil, m...)
	link = newLinkProxy(t, leafListen)
	leaf = meshFleet(t, leafDir, fmt.Sprintf(`
mesh: {mode: leaf, name: leaf, hub: ["nats-leaf://%s"], shared: [site]}
agents:
  - name: rover
    role: robot
    memory: {read: [agent/rover, site], write: [agent/rover, site]}
`, link.addr), map[string][]tool.Tool{"rover": {insp.tool(t)}})
	return hub, leaf, link
}

func TestFleetAcrossHubAndLeaf(t *testing.T) {
	insp := &inspections{}
	hubMetrics := metrics.New()
	hub, leaf, link := hubAndLeaf(t, insp, hubMetrics)
	dispatcher, _ := hub.Agent("dispatcher")
	rover, _ := leaf.Agent("rover")

	// /agents on the hub lists the leaf's rover, with its node and heartbeat.
	waitFor(t, func() bool {
		ev := command(t, dispatcher, "/agents")
		var ss []agent.Status
		_ = json.Unmarshal(ev.Data, &ss)
		for _, s := range ss {
			if s.Name == "rover" && s.Node == "leaf" && s.Role == "robot" && !s.Heartbeat.IsZero() && s.DID != "" {
				return true
			}
		}
		return false
	})

	// /ask reaches an agent of the other node; its turn answers.
	ev := command(t, dispatcher, "/ask rover where are you?")
	if ev.Type != agent.EventReply || !strings.HasPrefix(ev.Text, "rover: ") || !strings.Contains(ev.Text, "no model") {
		t.Fatalf("/ask rover = %+v; want rover's reply", ev)
	}
	if ev := command(t, dispatcher, "/ask nobody hi"); ev.Type != agent.EventError || ev.Code != agent.CodeInvalid {
		t.Errorf("/ask nobody = %+v; want invalid", ev)
	}

	// A reading written on the leaf replicates to the hub, where it wakes
	// the dispatcher's reflex: the nearest robot is sent, reports back,
	// and the outcome is stored on the hub.
	put := `/call memory.put {"text":"pipe temperature 71 C","namespace":"site","kind":"reading","data":{"temp_c":71,"lat":52.5203,"lon":13.4046}}`
	if ev := command(t, rover, put); ev.Type != agent.EventReply {
		t.Fatalf("put: %+v", ev)
	}
	cool := `/call memory.put {"text":"pipe temperature 20 C","namespace":"site","kind":"reading","data":{"temp_c":20,"lat":52.52,"lon":13.40}}`
	command(t, rover, cool)
	waitFor(t, func() bool { return doneTasks(t, dispatcher) == 1 })
	ts := tasksOf(t, dispatcher)
	if len(ts) != 1 || ts[0].From != "dispatcher" || ts[0].To != "rover" || !strings.Contains(ts[0].Goal, "inspect.here") || !strings.Contains(string(ts[0].Result), "a warm pipe") {
		t.Fatalf("tasks = %+v; want one inspection by rover with its result (the cool reading sends nobody)", ts)
	}
	if insp.args[0]["lat"] != 52.5203 || insp.args[0]["lon"] != 13.4046 || insp.args[0]["speed"] != 1 {
		t.Errorf("inspect.here args = %v", insp.args[0])
	}
	waitFor(t, func() bool {
		ev := command(t, dispatcher, "/memory recent 10")
		return strings.Contains(ev.Text, "by rover: done") && strings.Contains(ev.Text, "a warm pipe")
	})

	// The hub's /metrics shows how late the reading arrived.
	rec := httptest.NewRecorder()
	hubMetrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "depai_mesh_replication_lag_seconds ") || strings.Contains(rec.Body.String(), "depai_mesh_replication_lag_seconds 0\n") {
		t.Errorf("no replication lag in /metrics:\n%s", grepLine(rec.Body.String(), "replication"))
	}

	// The link is cut: a task offered on the hub and a reading written on
	// the leaf meanwhile both arrive once it is back (JetStream holds them).
	link.cut()
	time.Sleep(300 * time.Millisecond)
	ev = command(t, dispatcher, `/call fleet.delegate {"to":"rover","goal":"report your battery"}`)
	if ev.Type != agent.EventReply {
		t.Fatalf("delegate while the link is down: %+v", ev)
	}
	if ev := command(t, rover, strings.Replace(put, "71", "88", 2)); ev.Type != agent.EventReply {
		t.Fatalf("put while the link is down: %+v", ev)
	}
	time.Sleep(300 * time.Millisecond)
	if n := doneTasks(t, dispatcher); n != 1 {
		t.Fatalf("%d tasks done while the link was down; want 1", n)
	}
	link.restore()
	deadline := time.Now().Add(15 * time.Second)
	for doneTasks(t, dispatcher) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after the link returned: tasks %+v", tasksOf(t, dispatcher))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := insp.count(); n != 2 {
		t.Errorf("inspections = %d; want 2 (no duplicates)", n)
	}
}

func TestFleetMeshLoopsEndAndRefusalsAreAudited(t *testing.T) {
	hub, leaf, _ := hubAndLeaf(t, &inspections{})
	dispatcher, _ := hub.Agent("dispatcher")
	rover, _ := leaf.Agent("rover")
	waitFor(t, func() bool { return command(t, rover, "/ask dispatcher hi").Type == agent.EventReply })

	ma, _ := leaf.Mesh().Agent("rover")
	p := json.RawMessage(`{"text":"again"}`)
	// Past the core's depth limit (4) but within the mesh's hop limit (8):
	// the dispatcher's policy refuses the input.
	env, err := ma.Ask(t.Context(), "dispatcher", p, mesh.AskOptions{Hops: 5})
	if err != nil || !strings.Contains(string(env.Payload), `"code":"denied"`) {
		t.Errorf("ask at depth 6: %s, %v; want the core's depth limit", env.Payload, err)
	}
	// Past the hop limit: refused by the mesh, on record in the hub's audit log.
	if _, err := ma.Ask(t.Context(), "dispatcher", p, mesh.AskOptions{Hops: 8}); err == nil {
		t.Error("ask at 9 hops succeeded")
	}
	waitFor(t, func() bool {
		ev := command(t, dispatcher, "/audit 20")
		return strings.Contains(string(ev.Data), "mesh.hops")
	})
}

func grepLine(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestTasksWithTheMeshOff(t *testing.T) {
	f, _ := openFleet(t, "agents: [{name: a}]\n")
	a, _ := f.Agent("a")
	ev := command(t, a, "/tasks")
	if ev.Type != agent.EventError || ev.Code != agent.CodeUnavailable || !strings.Contains(ev.Error, "mesh:") {
		t.Errorf("/tasks with the mesh off = %+v; want unavailable saying how to turn it on", ev)
	}
}

// TestAgentCallsRestrictDelegatedTools: a rover whose safety.agent_calls
// does not list inspect.here for the dispatcher refuses the dispatcher's
// depai.call task — the tool never runs, the task fails with the rule, and
// the refusal is in the rover's audit log.
func TestAgentCallsRestrictDelegatedTools(t *testing.T) {
	insp := &inspections{}
	f := meshFleet(t, t.TempDir(), `
mesh: {mode: embedded, shared: [site]}
agents:
`+dispatcherYAML+`  - name: rover
    role: robot
    memory: {read: [agent/rover, site], write: [agent/rover, site]}
    safety:
      agent_calls:
        - {from: dispatcher, tools: ["robot.*"]}
`, map[string][]tool.Tool{"rover": {insp.tool(t)}})
	dispatcher, _ := f.Agent("dispatcher")
	rover, _ := f.Agent("rover")
	put := `/call memory.put {"text":"pipe temperature 71 C","namespace":"site","kind":"reading","data":{"temp_c":71,"lat":52.5203,"lon":13.4046}}`
	if ev := command(t, rover, put); ev.Type != agent.EventReply {
		t.Fatalf("put: %+v", ev)
	}
	var failed agent.TaskInfo
	waitFor(t, func() bool {
		for _, ti := range tasksOf(t, dispatcher) {
			if ti.State == string(mesh.TaskFailed) {
				failed = ti
				return true
			}
		}
		return false
	})
	if !strings.Contains(failed.Error, "safety.agent_calls") || failed.To != "rover" {
		t.Errorf("task = %+v; want rover's refusal naming safety.agent_calls", failed)
	}
	if n := insp.count(); n != 0 {
		t.Errorf("inspect.here ran %d times; want 0", n)
	}
	if ev := command(t, rover, "/audit 20"); !strings.Contains(string(ev.Data), `"rule":"safety.agent_calls"`) {
		t.Errorf("no refusal in rover's audit log:\n%s", ev.Data)
	}
}

// TestOpenOfferGoesToTheNearestBidder: fleet.delegate without to is an open
// offer; the robots bid their distance to where the work is, the digital
// agent does not bid on a robot's task, and the nearest robot is awarded it
// and does it.
func TestOpenOfferGoesToTheNearestBidder(t *testing.T) {
	f := meshFleet(t, t.TempDir(), `
mesh: {mode: embedded}
agents:
  - name: dispatcher
  - name: clerk
  - name: near-rover
    role: robot
  - name: far-rover
    role: robot
`, nil)
	dispatcher, _ := f.Agent("dispatcher")
	for name, pos := range map[string]string{"near-rover": `{"lat":52.5201,"lon":13.4041}`, "far-rover": `{"lat":52.5300,"lon":13.4200}`} {
		a, _ := f.Agent(name)
		if err := a.Report(t.Context(), "gnss", "fix", json.RawMessage(pos)); err != nil {
			t.Fatal(err)
		}
	}
	// The robots' cards carry the role once they are published.
	waitFor(t, func() bool {
		ss, n := command(t, dispatcher, "/agents"), 0
		for _, name := range []string{"near-rover", "far-rover", "clerk"} {
			if strings.Contains(ss.Text, name) {
				n++
			}
		}
		return n == 3
	})
	ev := command(t, dispatcher, `/call fleet.delegate {"goal":"look at the pump","role":"robot","near":{"lat":52.5200,"lon":13.4040}}`)
	if ev.Type != agent.EventReply {
		t.Fatalf("delegate: %+v", ev)
	}
	var offered agent.TaskInfo
	if err := json.Unmarshal(ev.Data, &offered); err != nil || offered.To != "" {
		t.Fatalf("delegate answered %s (%v); want an open offer", ev.Data, err)
	}
	var done mesh.Task
	waitFor(t, func() bool {
		tk, ok := f.Mesh().Task(offered.ID)
		done = tk
		return ok && tk.State == mesh.TaskDone
	})
	if done.To != "near-rover" {
		t.Errorf("awarded to %q; want near-rover (bids %+v)", done.To, done.Bids)
	}
	bidders := map[string]float64{}
	for _, b := range done.Bids {
		bidders[b.Agent] = b.Price
	}
	if len(bidders) != 2 || bidders["near-rover"] > 20 || bidders["far-rover"] < 1000 {
		t.Errorf("bids %+v; want the two robots' distances (near ≈ 13 m, far ≈ 1.4 km) and none from clerk", done.Bids)
	}

	// Malformed terms are refused before anything is offered.
	for _, args := range []string{`{"goal":"x","role":"boat"}`, `{"goal":"x","to":"clerk","role":"robot"}`, `{"goal":"x","near":{"lat":91,"lon":0}}`, `{"to":"clerk"}`} {
		if ev := command(t, dispatcher, "/call fleet.delegate "+args); ev.Type != agent.EventError {
			t.Errorf("delegate %s: %+v; want an error", args, ev)
		}
	}
}
