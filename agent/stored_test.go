package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/llm/llmtest"
	"github.com/depai/depai/memory"
)

// openStoredFleet opens a one-agent fleet named "st" in dir against srv,
// on store (nil: a memory.DB the fleet opens in dir).
func openStoredFleet(t *testing.T, dir, url string, store agent.Store) (*agent.Fleet, *agent.Agent) {
	t.Helper()
	path := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, "name: st\nmodel: {base_url: %q, model: m}\nlimits: {concurrency: 4}\n", url), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Agent("st")
	if err != nil {
		t.Fatal(err)
	}
	return f, a
}

// storedTurns lists the turn IDs whose records are in dir's memory, with
// the reply each record holds.
func storedTurns(t *testing.T, dir string) map[string]string {
	t.Helper()
	db, err := memory.Open(t.Context(), memory.Config{Dir: filepath.Join(dir, "data", "memory")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]string{}
	for r, err := range db.Query(t.Context(), memory.Query{Namespace: "agent/st", Kinds: []memory.Kind{memory.KindTurn}}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range r.Tags {
			if id, ok := strings.CutPrefix(tag, "turn:"); ok {
				_, reply, _ := strings.Cut(r.Text, "\n")
				got[id] = reply
			}
		}
	}
	return got
}

// A turn's answer comes before its EventStored; a caller that stops at the
// answer neither cancels nor loses the record (Close waits for it), and the
// next turn of the conversation sees the one before, stored or not yet.
func TestAnswerBeforeStored(t *testing.T) {
	srv := llmtest.NewServer(t)
	dir := t.TempDir()
	f, a := openStoredFleet(t, dir, srv.URL, nil)
	var ids []string
	for i := range 20 {
		srv.Push(llmtest.Reply{Text: fmt.Sprintf("answer %d", i)})
		var types []agent.EventType
		for ev, err := range a.Handle(t.Context(), agent.Input{Text: fmt.Sprintf("question %d", i)}) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != agent.EventDelta {
				types = append(types, ev.Type)
			}
			if ev.Type == agent.EventReply {
				ids = append(ids, ev.TurnID)
				if i%2 == 0 {
					break // stop at the answer
				}
			}
		}
		want := []agent.EventType{agent.EventReply, agent.EventStored}
		if i%2 == 0 {
			want = want[:1]
		}
		if fmt.Sprint(types) != fmt.Sprint(want) {
			t.Fatalf("turn %d: events %v; want %v", i, types, want)
		}
	}
	reqs := srv.Requests()
	last := reqs[len(reqs)-1].Messages
	if got := last[len(last)-2]; got.Content != "answer 18" {
		t.Fatalf("turn 19 saw %q as the previous answer; want %q (the turn before, which stopped at its answer)", got.Content, "answer 18")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.WaitStored(ctx); err != nil {
		t.Fatalf("WaitStored: %v", err)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored := storedTurns(t, dir)
	for i, id := range ids {
		if want := fmt.Sprintf("answer %d", i); stored[id] != want {
			t.Errorf("turn %d (%s): stored reply %q; want %q", i, id, stored[id], want)
		}
	}
}

// Killed with -9 after answers: every turn whose EventStored was seen is in
// memory after the restart. A turn seen only up to its answer may be lost —
// which is why whatever says "stored" waits for EventStored. The child is
// this test binary (TestMain is not needed: the test itself is the child
// when DEPAI_STORED_CHILD names a directory).
func TestKilledAfterAnswersKeepsStoredTurns(t *testing.T) {
	if dir := os.Getenv("DEPAI_STORED_CHILD"); dir != "" {
		storedChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledAfterAnswersKeepsStoredTurns$")
	cmd.Env = append(os.Environ(), "DEPAI_STORED_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	answered, storedSeen := map[string]string{}, map[string]bool{}
	lines := bufio.NewScanner(out)
	for lines.Scan() && len(answered) < 60 {
		kind, rest, _ := strings.Cut(lines.Text(), " ")
		id, reply, _ := strings.Cut(rest, " ")
		switch kind {
		case "reply":
			answered[id] = reply
		case "stored":
			storedSeen[id] = true
		}
	}
	if len(answered) < 60 {
		t.Fatalf("child answered %d turns before its output ended; want 60", len(answered))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(storedSeen) == 0 {
		t.Fatal("no EventStored seen before the kill")
	}
	stored := storedTurns(t, dir)
	for id := range storedSeen {
		if stored[id] != answered[id] {
			t.Errorf("turn %s: EventStored was seen, but after kill -9 memory holds reply %q; want %q", id, stored[id], answered[id])
		}
	}
	kept := 0
	for id := range answered {
		if _, ok := stored[id]; ok {
			kept++
		}
	}
	t.Logf("kill -9 after %d answers: %d stored events seen, all kept; %d of the %d answered turns kept in all", len(answered), len(storedSeen), kept, len(answered))
}

// storedChild runs turns until it is killed: the even ones stop at the
// answer, the odd ones wait for EventStored; it prints what it saw.
func storedChild(t *testing.T, dir string) {
	srv, err := llmtest.Start(llmtest.Config{Respond: func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "re: " + r.Messages[len(r.Messages)-1].Content}
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, a := openStoredFleet(t, dir, srv.URL, nil)
	w := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		for ev, err := range a.Handle(t.Context(), agent.Input{Text: fmt.Sprintf("q%d", i)}) {
			if err != nil {
				t.Fatal(err)
			}
			switch ev.Type {
			case agent.EventReply:
				fmt.Fprintf(w, "reply %s %s\n", ev.TurnID, ev.Text)
			case agent.EventStored:
				fmt.Fprintf(w, "stored %s\n", ev.TurnID)
			case agent.EventError:
				t.Fatalf("turn %d: %s: %s", i, ev.Code, ev.Error)
			}
			_ = w.Flush()
			if ev.Type == agent.EventReply && i%2 == 0 {
				break
			}
		}
	}
}

// A turn's record waits to share a commit (memory.DB.PutDeferred) only
// when nobody waits for it (the consumer stopped at the answer) or while
// other turns of the agent have yet to answer: theirs will come. A lone
// turn's record that its consumer waits for commits at once — with an
// hour's CommitDelay, a lone turn that deferred would not be stored within
// the test.
func TestTurnRecordsDeferOnlyWhenNothingWaitsForThem(t *testing.T) {
	release := make(chan struct{})
	srv, err := llmtest.Start(llmtest.Config{Respond: func(r llmtest.Request) llmtest.Reply {
		if last := r.Messages[len(r.Messages)-1].Content; last == "slow" {
			<-release
		}
		return llmtest.Reply{Text: "ok"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var mu sync.Mutex
	var commits []memory.CommitInfo
	dir := t.TempDir()
	db, err := memory.Open(t.Context(), memory.Config{Dir: filepath.Join(dir, "memory"), CommitDelay: time.Hour, OnCommit: func(ci memory.CommitInfo) {
		mu.Lock()
		defer mu.Unlock()
		commits = append(commits, ci)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, a := openStoredFleet(t, dir, srv.URL, db)
	defer f.Close(context.Background())
	ask := func(text string) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := a.Ask(t.Context(), agent.Input{Text: text})
			done <- err
		}()
		return done
	}
	wait := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(30 * time.Second):
			db.Close() // ends the deferred writes' wait, so the fleet can close
			t.Fatalf("%s: not stored within 30 s", what)
		}
	}
	wait("a lone turn", ask("alone"))

	// Nobody waits for the record of a turn whose consumer stopped at the
	// answer: it waits for company.
	mu.Lock()
	before := len(commits)
	mu.Unlock()
	for ev, err := range a.Handle(t.Context(), agent.Input{Text: "answer only"}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == agent.EventReply {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	alone := len(commits) - before
	mu.Unlock()
	if alone != 0 {
		db.Close()
		t.Fatalf("the record of a turn whose consumer stopped at its answer committed alone (%d commits)", alone)
	}
	// WaitStored is a waiter: the record commits at once.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.WaitStored(ctx); err != nil {
		db.Close()
		t.Fatalf("WaitStored with a deferred record waiting: %v", err)
	}
	mu.Lock()
	before = len(commits)
	mu.Unlock()

	slow := ask("slow")
	for deadline := time.Now().Add(30 * time.Second); len(srv.Requests()) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			db.Close()
			t.Fatal("the slow turn's model call never reached the server")
		}
	}
	fast := ask("fast")
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-fast:
		t.Fatalf("the turn that answered while another ran was stored alone, without waiting for company (err %v)", err)
	default:
	}
	close(release)
	wait("the slow turn", slow)
	wait("the fast turn", fast)
	mu.Lock()
	defer mu.Unlock()
	if got := commits[before:]; len(got) != 1 || got[0].Requests != 2 {
		t.Fatalf("commits of the two turns' records: %+v, want one of 2 requests", got)
	}
}
