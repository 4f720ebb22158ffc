package mesh

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestWorkerProcess is not a test: it is the body of the child process
// that TestNodeKilledMidTask starts (and kills). It runs a leaf node with
// one agent, "worker", that accepts each offer, reports progress and then
// hangs — until, restarted, it is told to resume and completes.
func TestWorkerProcess(t *testing.T) {
	hub := os.Getenv("MESH_WORKER_HUB")
	if hub == "" {
		t.Skip("child process of TestNodeKilledMidTask")
	}
	dir := os.Getenv("MESH_WORKER_DIR")
	n, err := Start(context.Background(), Config{Name: "worker-node", Mode: ModeLeaf, Node: key(t, "node worker"), DataDir: dir,
		Hub: []string{hub}, ReconnectInterval: 100 * time.Millisecond, Agents: agents(t, "worker"), Logger: testLogger(t)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	w := mustAgent(t, n, "worker")
	ctx := context.Background()
	w.ServeTasks(TaskHandlerFunc(func(_ context.Context, u TaskUpdate) {
		switch u.Event {
		case EventOffer:
			if _, err := w.Accept(ctx, u.Task.ID); err != nil {
				fmt.Println("error", err)
				return
			}
			if _, err := w.Progress(ctx, u.Task.ID, 50, "halfway, pid "+fmt.Sprint(os.Getpid())); err != nil {
				fmt.Println("error", err)
			}
			// Hang here, mid-task, until SIGKILL.
		case EventResume:
			if _, err := w.Complete(ctx, u.Task.ID, json.RawMessage(fmt.Sprintf(`{"resumed_by":%d}`, os.Getpid()))); err != nil {
				fmt.Println("error", err)
			}
			fmt.Println("completed", u.Task.ID)
		}
	}))
	fmt.Println("ready")
	select {}
}

// A node is killed with SIGKILL while its agent works on a task; the
// delegator's view keeps the task running, and the restarted node resumes
// and finishes it. Nothing acknowledged is lost.
func TestNodeKilledMidTask(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	workerKey := key(t, "node worker")
	hub := startNode(t, Config{Name: "hub", DataDir: filepath.Join(dir, "hub"), LeafListen: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		LeafNodes: []string{workerKey.DID()}, Agents: agents(t, "dispatcher"), RegistryTTL: 2 * time.Second})
	child := func() (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.v=false")
		cmd.Env = append(os.Environ(), "MESH_WORKER_HUB="+hub.Server().LeafURL(), "MESH_WORKER_DIR="+filepath.Join(dir, "worker"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				return cmd, sc
			}
			if strings.HasPrefix(sc.Text(), "error") {
				t.Fatalf("worker: %s", sc.Text())
			}
		}
		t.Fatal("worker exited before it was ready")
		return nil, nil
	}
	cmd, _ := child()
	registered(t, hub, "worker")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	disp := mustAgent(t, hub, "dispatcher")
	task, err := disp.Delegate(ctx, Offer{To: "worker", Kind: "inspect", Timeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the worker's progress", func() bool { got, _ := hub.Task(task.ID); return got.State == TaskRunning })
	firstPID := cmd.Process.Pid
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got, _ := hub.Task(task.ID); got.State != TaskRunning || got.Percent != 50 || !strings.Contains(got.Note, fmt.Sprint(firstPID)) {
		t.Fatalf("after the kill: %+v", got)
	}

	cmd, sc := child() // restarted on the same data directory
	done, err := hub.Wait(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"resumed_by":%d}`, cmd.Process.Pid)
	if done.State != TaskDone || string(done.Output) != want {
		t.Fatalf("task %+v, want done with %s", done, want)
	}
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "completed "+task.ID) {
			break
		}
		if strings.HasPrefix(sc.Text(), "error") {
			t.Fatalf("worker: %s", sc.Text())
		}
	}
	// Exactly one offer, one accept, one progress, one result: nothing repeated.
	var evs []string
	cons, err := hub.js.OrderedConsumer(ctx, tasksStream, orderedAll())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		m, err := cons.Next()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:])
	}
	if strings.Join(evs, ",") != "offer,accept,progress,result" {
		t.Fatalf("stream holds %v", evs)
	}
	if info, _ := hub.js.Stream(ctx, tasksStream); info != nil {
		if s, _ := info.Info(ctx); s.State.Msgs != 4 {
			t.Fatalf("stream holds %d messages, want 4", s.State.Msgs)
		}
	}
}

func orderedAll() jetstream.OrderedConsumerConfig {
	return jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
}
