package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/memory"
)

// multiNode is examples/fleet/multi-node run as its README says: a hub
// process and a leaf process on loopback, with ports from the kernel.
type multiNode struct {
	t                 *testing.T
	env               []string
	hubFile, leafFile string
	hubData, leafData string
	hub, leaf         *server
	hubAPI, leafAPI   *operator.Client
}

// buildEnv shares one Go build cache and one plugin cache between the
// processes, so the rovers' plugin is built once.
func buildEnv(t *testing.T) []string {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"GOCACHE=" + strings.TrimSpace(string(out)), "XDG_CACHE_HOME=" + t.TempDir()}
}

func freeLoopbackPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newMultiNode(t *testing.T) *multiNode {
	dir := t.TempDir()
	m := &multiNode{t: t, env: buildEnv(t), hubData: filepath.Join(dir, "hub"), leafData: filepath.Join(dir, "leaf")}
	// Step 1 of the README: the leaf node's key, which the hub admits.
	out, errOut, code := depai(t, "", m.env, "id", "new", "--data", m.leafData, "leaf")
	did := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(did, "did:key:z") {
		t.Fatalf("depai id new: exit %d: %s %s", code, out, errOut)
	}
	leafPort := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	src := "../../examples/fleet/multi-node/"
	simbot, _ := filepath.Abs("../../plugins/simbot")
	m.hubFile = rewrite(t, src+"hub.yaml", filepath.Join(dir, "hub.yaml"), "127.0.0.1:7422", leafPort, "leaf_nodes: []", "leaf_nodes: ["+did+"]")
	m.leafFile = rewrite(t, src+"leaf.yaml", filepath.Join(dir, "leaf.yaml"), "127.0.0.1:7422", leafPort, "../../../plugins/simbot", simbot)
	m.startHub()
	m.startLeaf()
	return m
}

// rewrite copies an example config with the README's edits (the leaf's
// did:key) and the test's (a free port; the plugin's absolute path).
func rewrite(t *testing.T, from, to string, oldNew ...string) string {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s has no %q", from, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	if err := os.WriteFile(to, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

func (m *multiNode) client(data string) *operator.Client {
	info, _, err := readRunInfo(data)
	if err != nil {
		m.t.Fatal(err)
	}
	token, err := operator.ReadToken(info.TokenFile)
	if err != nil {
		m.t.Fatal(err)
	}
	return operator.NewClient(info.Addr, token)
}

func (m *multiNode) startHub() {
	m.hub = startRun(m.t, m.env, m.hubFile, "--data", m.hubData, "--addr", "127.0.0.1:0")
	m.hubAPI = m.client(m.hubData)
}

func (m *multiNode) startLeaf() {
	m.leaf = startRun(m.t, m.env, m.leafFile, "--data", m.leafData, "--addr", "127.0.0.1:0")
	m.leafAPI = m.client(m.leafData)
}

// kill9 ends a process with SIGKILL, by its PID, and reaps it.
func kill9(t *testing.T, s *server) {
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

func send(t *testing.T, c *operator.Client, name, text string) (agent.Event, error) {
	var last agent.Event
	for ev, err := range c.Send(t.Context(), name, text) {
		if err != nil {
			return last, err
		}
		last = ev
	}
	return last, nil
}

func (m *multiNode) tasks() []agent.TaskInfo {
	ev, err := send(m.t, m.hubAPI, "dispatcher", "/tasks")
	if err != nil {
		return nil
	}
	var r agent.TasksReport
	_ = json.Unmarshal(ev.Data, &r)
	return r.Tasks
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMultiNodeExample runs examples/fleet/multi-node as two `depai run`
// processes: a task crosses nodes; the hub process stops while the leaf
// writes shared memory and starts again with nothing lost or doubled; a
// node is SIGKILLed mid-task and restarted, and the task ends once.
func TestMultiNodeExample(t *testing.T) {
	if testing.Short() {
		t.Skip("two depai run processes and a native plugin build")
	}
	m := newMultiNode(t)
	defer func() {
		if t.Failed() {
			t.Logf("tasks: %+v\nhub:\n%s\nleaf:\n%s", m.tasks(), m.hub.stderr.String(), m.leaf.stderr.String())
		}
	}()
	// The rovers' plugin is built on first start: wait for it before timing anything.
	for _, r := range []string{"rover-1", "rover-2"} {
		if ev, err := send(t, m.leafAPI, r, "/call robot.pose {}"); err != nil || ev.Type != agent.EventReply {
			t.Fatalf("%s's robot.pose: %+v %v", r, ev, err)
		}
	}

	// The hub's operator API lists and reaches the leaf's agents
	// (`depai chat --addr` any node reaches any agent).
	eventually(t, 20*time.Second, "the leaf's rovers on the hub", func() bool {
		list, err := m.hubAPI.Agents(t.Context())
		n := 0
		for _, s := range list {
			if s.Node == "leaf" && s.Role == "robot" {
				n++
			}
		}
		return err == nil && n == 2
	})
	// The nearest robot is chosen by the poses the cards carry.
	eventually(t, 20*time.Second, "the rovers' poses on the hub", func() bool {
		list, _ := m.hubAPI.Agents(t.Context())
		n := 0
		for _, s := range list {
			if s.Node == "leaf" && s.Robot != nil && !s.Robot.Time.IsZero() {
				n++
			}
		}
		return n == 2
	})
	ev, err := send(t, m.hubAPI, "rover-1", "hello from the hub")
	if err != nil || !strings.HasPrefix(ev.Text, "rover-1: ") {
		t.Fatalf("a message to rover-1 through the hub: %+v %v", ev, err)
	}

	// A task crosses nodes: a hot reading on the leaf replicates to the hub,
	// whose dispatcher sends the nearest rover (rover-2) to drive there.
	put := `/call memory.put {"text":"pipe 71 C","namespace":"site","kind":"reading","data":{"temp_c":71,"lat":52.5210,"lon":13.4062}}`
	if _, err := send(t, m.leafAPI, "rover-2", put); err != nil {
		t.Fatal(err)
	}
	eventually(t, 40*time.Second, "the inspection done", func() bool {
		ts := m.tasks()
		return len(ts) == 1 && ts[0].State == "done"
	})
	if tk := m.tasks()[0]; tk.To != "rover-2" || !strings.Contains(tk.Goal, "drive.to") || !strings.Contains(string(tk.Result), `"robot"`) {
		t.Errorf("inspection = %+v; want rover-2 sent with drive.to, reporting its pose", tk)
	}

	// The leaf's link is cut (the hub process stops) during writes, and
	// restored (the hub starts again): every acknowledged write arrives once.
	const writes = 30
	for i := range writes {
		if i == 10 {
			if code := m.hub.stop(t, syscall.SIGTERM); code != 0 {
				t.Errorf("hub exit %d", code)
			}
		}
		if i == 20 {
			m.startHub()
		}
		text := fmt.Sprintf(`/call memory.put {"text":"note %d","namespace":"site","kind":"observation"}`, i)
		if ev, err := send(t, m.leafAPI, "rover-1", text); err != nil || ev.Type != agent.EventReply {
			t.Fatalf("write %d on the leaf: %+v %v", i, ev, err)
		}
	}
	eventually(t, 20*time.Second, "every note on the hub", func() bool {
		ev, err := send(t, m.hubAPI, "dispatcher", "/memory recent 500")
		if err != nil {
			return false
		}
		var recs []memory.Record
		_ = json.Unmarshal(ev.Data, &recs)
		seen := map[string]int{}
		for _, r := range recs {
			if r.Namespace == "site" && strings.HasPrefix(r.Text, "note ") {
				seen[r.Text]++
			}
		}
		for i := range writes {
			if n := seen[fmt.Sprintf("note %d", i)]; n > 1 {
				t.Fatalf("note %d is on the hub %d times", i, n)
			}
		}
		return len(seen) == writes
	})

	// The leaf (the assignee) is SIGKILLed right after a task is offered to
	// it, and restarted: the task ends once, done or cleanly failed.
	ev, err = send(t, m.hubAPI, "dispatcher", `/call fleet.delegate {"to":"rover-1","goal":"report your position","timeout_s":30}`)
	if err != nil {
		t.Fatal(err)
	}
	var offered agent.TaskInfo
	if err := json.Unmarshal(ev.Data, &offered); err != nil || offered.ID == "" {
		t.Fatalf("delegate: %s %v", ev.Data, err)
	}
	kill9(t, m.leaf)
	m.startLeaf()
	eventually(t, 30*time.Second, "the task ended after the restart", func() bool {
		for _, tk := range m.tasks() {
			if tk.ID == offered.ID {
				return tk.State == "done" || tk.State == "failed" && tk.Error != ""
			}
		}
		return false
	})
	n := 0
	for _, tk := range m.tasks() {
		if tk.ID == offered.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("task %s listed %d times", offered.ID, n)
	}
	for _, s := range []*server{m.leaf, m.hub} {
		if code := s.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit %d\n%s", code, s.stderr.String())
		}
	}
}
