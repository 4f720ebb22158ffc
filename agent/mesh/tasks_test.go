package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"
)

// updates records the task updates an agent is told.
type updates struct {
	mu  sync.Mutex
	got []TaskUpdate
	on  func(TaskUpdate)
}

func (u *updates) HandleTask(_ context.Context, x TaskUpdate) {
	u.mu.Lock()
	u.got = append(u.got, x)
	on := u.on
	u.mu.Unlock()
	if on != nil {
		on(x)
	}
}

func (u *updates) events(id string) []TaskEvent {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []TaskEvent
	for _, x := range u.got {
		if x.Task.ID == id {
			out = append(out, x.Event)
		}
	}
	return out
}

func TestDelegateAcceptProgressComplete(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "dispatcher", "robot")})
	registered(t, n, "robot")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disp, robot := mustAgent(t, n, "dispatcher"), mustAgent(t, n, "robot")
	var du updates
	ru := &updates{}
	// The robot's calls return once their publish is acknowledged, which
	// can be after the node applied them (Wait below returns then): the
	// test waits for them, or its cancelled context fails the last one
	// ("result: context canceled", seen in CI).
	answered := make(chan struct{})
	var once sync.Once
	ru.on = func(u TaskUpdate) {
		if u.Event != EventOffer {
			return
		}
		defer once.Do(func() { close(answered) })
		if _, err := robot.Accept(ctx, u.Task.ID); err != nil {
			t.Error(err)
		}
		if _, err := robot.Progress(ctx, u.Task.ID, 50, "halfway"); err != nil {
			t.Error(err)
		}
		if _, err := robot.Complete(ctx, u.Task.ID, json.RawMessage(`{"reading":21.5}`)); err != nil {
			t.Error(err)
		}
	}
	disp.ServeTasks(&du)
	robot.ServeTasks(ru)
	task, err := disp.Delegate(ctx, Offer{To: "robot", Kind: "inspect", Input: json.RawMessage(`{"at":"pump-3"}`), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if task.State != TaskOffered || task.To != "robot" || task.From != "dispatcher" {
		t.Fatalf("offered task %+v", task)
	}
	done, err := n.Wait(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != TaskDone || string(done.Output) != `{"reading":21.5}` || done.Percent != 100 {
		t.Fatalf("task %+v", done)
	}
	waitFor(t, 2*time.Second, "the dispatcher to hear of the result", func() bool { return len(du.events(task.ID)) == 3 })
	if got := du.events(task.ID); got[0] != EventAccept || got[1] != EventProgress || got[2] != EventResult {
		t.Fatalf("dispatcher told %v", got)
	}
	// Nothing more can happen to a finished task.
	if _, err := robot.Fail(ctx, task.ID, "oops"); !errors.Is(err, ErrTaskRejected) {
		t.Fatalf("fail after done: %v", err)
	}
	if l := n.Tasks(TaskFilter{Agent: "robot", State: TaskDone}); len(l) != 1 || l[0].ID != task.ID {
		t.Fatalf("Tasks = %+v", l)
	}
	select {
	case <-answered:
	case <-ctx.Done():
		t.Fatal("the robot's Accept, Progress and Complete did not return")
	}
}

func TestOpenOfferBidAwardAndFirstAcceptWins(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "dispatcher", "r1", "r2", "r3")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disp, r1, r2, r3 := mustAgent(t, n, "dispatcher"), mustAgent(t, n, "r1"), mustAgent(t, n, "r2"), mustAgent(t, n, "r3")
	task, err := disp.Delegate(ctx, Offer{Kind: "survey", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Bid(ctx, task.ID, Bid{Price: 3, ETA: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Bid(ctx, task.ID, Bid{Price: 2, ETA: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := disp.Award(ctx, task.ID, "r3"); !errors.Is(err, ErrTaskRejected) {
		t.Fatalf("award to an agent that did not bid: %v", err)
	}
	got, err := disp.Award(ctx, task.ID, "r2")
	if err != nil || got.To != "r2" || len(got.Bids) != 2 {
		t.Fatalf("award: %+v %v", got, err)
	}
	if _, err := r1.Accept(ctx, task.ID); !errors.Is(err, ErrTaskRejected) {
		t.Fatalf("accept by a bidder that was not awarded: %v", err)
	}
	if got, err := r2.Accept(ctx, task.ID); err != nil || got.State != TaskAccepted {
		t.Fatalf("accept by the awarded bidder: %+v %v", got, err)
	}

	// An open offer taken by accept: the first in stream order wins.
	task, _ = disp.Delegate(ctx, Offer{Kind: "fetch", Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, a := range []*Agent{r1, r2, r3} {
		wg.Go(func() { _, errs[i] = a.Accept(ctx, task.ID) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, ErrTaskRejected) {
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d agents won the open offer: %v", won, errs)
	}
	// The delegator may not take its own offer.
	task, _ = disp.Delegate(ctx, Offer{Kind: "self", Timeout: 5 * time.Second})
	if _, err := disp.Accept(ctx, task.ID); !errors.Is(err, ErrTaskRejected) {
		t.Fatalf("delegator accepting its own offer: %v", err)
	}
}

// A task not finished by its deadline times out for everyone: both sides
// are told, and a late result is refused.
func TestTaskTimesOutCleanly(t *testing.T) {
	var rej rejections
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "dispatcher", "robot"), OnReject: rej.add})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disp, robot := mustAgent(t, n, "dispatcher"), mustAgent(t, n, "robot")
	var du, ru updates
	disp.ServeTasks(&du)
	robot.ServeTasks(&ru)
	task, err := disp.Delegate(ctx, Offer{To: "robot", Kind: "slow", Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := robot.Accept(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	got, err := n.Wait(ctx, task.ID)
	if err != nil || got.State != TaskTimedOut {
		t.Fatalf("Wait = %+v, %v", got, err)
	}
	waitFor(t, 2*time.Second, "both sides to be told of the timeout", func() bool {
		d, r := du.events(task.ID), ru.events(task.ID)
		return len(d) > 0 && d[len(d)-1] == EventTimeout && len(r) > 0 && r[len(r)-1] == EventTimeout
	})
	if _, err := robot.Complete(ctx, task.ID, json.RawMessage(`1`)); !errors.Is(err, ErrTaskRejected) {
		t.Fatalf("late result: %v", err)
	}
	if got, _ := n.Task(task.ID); got.State != TaskTimedOut || got.Output != nil {
		t.Fatalf("after the late result: %+v", got)
	}
}

// A restarted node rebuilds every task from the stream and tells its agent
// what to resume and which offers still wait.
func TestTasksSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cfg := Config{Name: "n1", DataDir: dir, Agents: agents(t, "dispatcher", "robot"), Port: freePort(t)}
	n := startNode(t, cfg)
	disp, robot := mustAgent(t, n, "dispatcher"), mustAgent(t, n, "robot")
	accepted, _ := disp.Delegate(ctx, Offer{To: "robot", Kind: "a", Timeout: 10 * time.Second})
	if _, err := robot.Accept(ctx, accepted.ID); err != nil {
		t.Fatal(err)
	}
	pending, _ := disp.Delegate(ctx, Offer{To: "robot", Kind: "b", Timeout: 10 * time.Second})
	n.Shutdown()

	n = startNode(t, cfg)
	var ru updates
	mustAgent(t, n, "robot").ServeTasks(&ru)
	waitFor(t, 5*time.Second, "resume and offer after the restart", func() bool {
		return len(ru.events(accepted.ID)) == 1 && len(ru.events(pending.ID)) == 1
	})
	if e := ru.events(accepted.ID)[0]; e != EventResume {
		t.Fatalf("accepted task: told %s", e)
	}
	if e := ru.events(pending.ID)[0]; e != EventOffer {
		t.Fatalf("pending task: told %s", e)
	}
	if _, err := mustAgent(t, n, "robot").Complete(ctx, accepted.ID, json.RawMessage(`"ok"`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := n.Wait(ctx, accepted.ID); got.State != TaskDone {
		t.Fatalf("after restart: %+v", got)
	}
}
