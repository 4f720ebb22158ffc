package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/depai/depai/memory"
)

// fleet is a hub node and a leaf node, each with its own store, in one test.
type fleet struct {
	t                  testing.TB
	hubCfg, leafCfg    Config
	hub, leaf          *Node
	hubStore, leafStor *memory.DB
}

func openStore(t testing.TB, dir string) *memory.DB {
	t.Helper()
	db, err := memory.Open(context.Background(), memory.Config{Dir: dir, GCInterval: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newFleet(t testing.TB, onReject func(Rejection), limits ...Limits) *fleet {
	t.Helper()
	dir := t.TempDir()
	f := &fleet{t: t}
	leafKey := key(t, "node leaf")
	f.hubStore = openStore(t, filepath.Join(dir, "hub-mem"))
	f.leafStor = openStore(t, filepath.Join(dir, "leaf-mem"))
	f.hubCfg = Config{Name: "hub", Node: key(t, "node hub"), DataDir: filepath.Join(dir, "hub"), LeafListen: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		LeafNodes: []string{leafKey.DID()}, Agents: agents(t, "dispatcher"), Shared: []string{"fleet"}, Store: f.hubStore,
		OnReject: onReject, RegistryTTL: 3 * time.Second}
	if len(limits) > 0 {
		f.hubCfg.Limits = limits[0]
	}
	f.hub = startNode(t, f.hubCfg)
	f.leafCfg = Config{Name: "leaf", Mode: ModeLeaf, Node: leafKey, DataDir: filepath.Join(dir, "leaf"), Hub: []string{f.hub.Server().LeafURL()},
		ReconnectInterval: 100 * time.Millisecond, Agents: agents(t, "robot"), Shared: []string{"fleet"}, Store: f.leafStor,
		OnReject: onReject, RegistryTTL: 3 * time.Second}
	f.leafCfg.Limits = f.hubCfg.Limits
	f.leaf = startNode(t, f.leafCfg)
	waitFor(t, 10*time.Second, "the leaf link", func() bool { return f.hub.Server().NumLeafNodes() == 1 })
	registered(t, f.hub, "robot")
	registered(t, f.leaf, "dispatcher")
	return f
}

func TestAskAcrossHubAndLeaf(t *testing.T) {
	f := newFleet(t, nil)
	mustAgent(t, f.leaf, "robot").Serve(echo)
	mustAgent(t, f.hub, "dispatcher").Serve(echo)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := mustAgent(t, f.hub, "dispatcher").Ask(ctx, "robot", json.RawMessage(`{"go":"pump-3"}`), AskOptions{})
	if err != nil || string(rep.Payload) != `{"go":"pump-3"}` || rep.FromName != "robot" {
		t.Fatalf("hub → leaf: %+v %v", rep, err)
	}
	rep, err = mustAgent(t, f.leaf, "robot").Ask(ctx, "dispatcher", json.RawMessage(`2`), AskOptions{})
	if err != nil || string(rep.Payload) != `2` {
		t.Fatalf("leaf → hub: %+v %v", rep, err)
	}
	cards, err := f.leaf.Cards(ctx)
	if err != nil || len(cards) != 4 {
		t.Fatalf("cards seen from the leaf: %+v %v", cards, err)
	}
}

// stored counts the fleet records of a store with a key-only index scan,
// cheap enough to poll. (LastSeq is no count: an imported record keeps
// its Seq from the node that wrote it when that sorts last.)
func stored(t testing.TB, db *memory.DB) int {
	t.Helper()
	st, err := db.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Namespaces["fleet"]
}

// countIn counts the records of a namespace and says whether any ID is
// there twice.
func countIn(t testing.TB, db *memory.DB, ns string) (n int, dupes int) {
	t.Helper()
	seen := map[string]bool{}
	for rec, err := range db.Query(context.Background(), memory.Query{Namespace: ns}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[rec.ID] {
			dupes++
		}
		seen[rec.ID] = true
		n++
	}
	return n, dupes
}

func TestSharedMemoryReplicatesBothWaysWithIDs(t *testing.T) {
	f := newFleet(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A watch on the hub sees what the robot observes on the leaf.
	watched := make(chan memory.Record, 1)
	go func() {
		for rec, err := range f.hubStore.Watch(ctx, memory.Query{Namespace: "fleet", AfterSeq: f.hubStore.LastSeq()}) {
			if err == nil {
				watched <- rec
				return
			}
		}
	}()
	out, err := f.leafStor.Put(ctx, memory.Record{Namespace: "fleet/site-a", Kind: memory.KindObservation, Author: "robot", Text: "pressure 9.1 bar", Tags: []string{"pump-3"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.leafStor.Put(ctx, memory.Record{Namespace: "agent/robot", Kind: memory.KindObservation, Text: "private"}); err != nil {
		t.Fatal(err)
	}
	select {
	case rec := <-watched:
		if rec.ID != out[0].ID || rec.Text != "pressure 9.1 bar" || rec.Namespace != "fleet/site-a" || !rec.Recorded.Equal(out[0].Recorded) {
			t.Fatalf("replicated %+v, wrote %+v", rec, out[0])
		}
	case <-ctx.Done():
		t.Fatal("the hub's watch saw nothing")
	}
	hubRec, err := f.hubStore.Put(ctx, memory.Record{Namespace: "fleet", Kind: memory.KindFact, Key: "pump-3/state", Text: "inspect"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the hub's fact on the leaf", func() bool { _, err := f.leafStor.Get(ctx, hubRec[0].ID); return err == nil })
	if fact, err := f.leafStor.Fact(ctx, "fleet", "pump-3/state"); err != nil || fact.ID != hubRec[0].ID {
		t.Fatalf("fact on the leaf: %+v %v", fact, err)
	}
	time.Sleep(300 * time.Millisecond) // let any echo come back
	for _, db := range []*memory.DB{f.hubStore, f.leafStor} {
		if n, d := countIn(t, db, "fleet"); n != 2 || d != 0 {
			t.Fatalf("fleet records: %d (dupes %d), want 2", n, d)
		}
	}
	if n, _ := countIn(t, f.hubStore, "agent"); n != 0 {
		t.Fatalf("a private namespace replicated: %d records", n)
	}
}

// The leaf's link is cut (the hub stops) while both sides write; when the
// hub is back the leaf catches up and pushes what it wrote offline:
// nothing lost, no duplicates.
func TestLeafCatchesUpAfterTheHubWasDown(t *testing.T) {
	f := newFleet(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	put := func(db *memory.DB, who string, i int) {
		if _, err := db.Put(ctx, memory.Record{Namespace: "fleet", Kind: memory.KindReading, Author: who, Text: fmt.Sprint(who, " ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		put(f.leafStor, "leaf", i)
		put(f.hubStore, "hub", i)
	}
	waitFor(t, 10*time.Second, "the first writes to replicate", func() bool {
		return stored(t, f.hubStore) == 100 && stored(t, f.leafStor) == 100
	})

	f.hub.Shutdown() // the link is cut
	for i := 50; i < 300; i++ {
		put(f.leafStor, "leaf", i) // the robot keeps working
	}
	// The hub restarts on its data dir; its own store got writes while the leaf was away.
	f.hub = startNode(t, f.hubCfg)
	for i := 50; i < 300; i++ {
		put(f.hubStore, "hub", i)
	}
	waitFor(t, 30*time.Second, "both sides to have all 600", func() bool {
		a, b := stored(t, f.hubStore), stored(t, f.leafStor)
		if testing.Verbose() {
			t.Logf("hub %d leaf %d", a, b)
		}
		return a >= 600 && b >= 600
	})
	time.Sleep(500 * time.Millisecond)
	for name, db := range map[string]*memory.DB{"hub": f.hubStore, "leaf": f.leafStor} {
		n, d := countIn(t, db, "fleet")
		if n != 600 || d != 0 {
			t.Fatalf("%s: %d records, %d duplicates; want 600, 0", name, n, d)
		}
	}
}

// A record signed by someone else than a fleet node, or a malformed one,
// put straight onto the stream, is refused and never applied.
func TestForgedReplicatedRecordIsRejected(t *testing.T) {
	var rej rejections
	f := newFleet(t, rej.add)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := memory.Record{ID: "01JBZ6Y2K5Y5Q6XW9M3V4T8R7N", Namespace: "fleet", Kind: memory.KindFact, Key: "door", Text: "open", Time: time.Now(), Recorded: time.Now()}
	p, _ := json.Marshal(rec)
	e := Envelope{Schema: memSchema, Version: 1, Payload: p, Expires: time.Now().Add(time.Minute)}
	data, _ := seal(key(t, "node hub"), "hub", &e)
	var forged Envelope
	json.Unmarshal(data, &forged)
	forged.Payload = json.RawMessage(`{"id":"01JBZ6Y2K5Y5Q6XW9M3V4T8R7N","namespace":"fleet","kind":"fact","key":"door","text":"closed","time":"2026-01-01T00:00:00Z","recorded":"2026-01-01T00:00:00Z"}`)
	bad, _ := json.Marshal(forged)
	if _, err := f.hub.js.Publish(ctx, memSubject("fleet"), bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both nodes to refuse it", func() bool { return len(rej.list()) >= 2 })
	for _, r := range rej.list() {
		if r.Reason != ReasonBadSignature {
			t.Fatalf("rejection %+v", r)
		}
	}
	if _, err := f.leafStor.Get(ctx, rec.ID); err == nil {
		t.Fatal("the forged record was applied")
	}
}

// The same record twice on the stream (a redelivery, or a publish outside
// the dedupe window) is stored once, also when both copies arrive in one
// batch.
func TestDuplicateOnStreamIsAppliedOnce(t *testing.T) {
	f := newFleet(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := memory.Record{ID: "01JBZ6Y2K5Y5Q6XW9M3V4T8R7N", Namespace: "fleet", Kind: memory.KindObservation, Text: "twice",
		Time: time.Now().UTC(), Recorded: time.Now().UTC()}
	p, _ := json.Marshal(rec)
	for range 3 {
		e := Envelope{Schema: memSchema, Version: 1, Payload: p, Expires: time.Now().Add(time.Minute)}
		data, _ := seal(f.hubCfg.Node, "hub", &e)
		// No message ID: the stream keeps every copy.
		if _, err := f.hub.js.Publish(ctx, memSubject("fleet"), data); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the record on the leaf", func() bool { _, err := f.leafStor.Get(ctx, rec.ID); return err == nil })
	time.Sleep(300 * time.Millisecond)
	if n, d := countIn(t, f.leafStor, "fleet"); n != 1 || d != 0 {
		t.Fatalf("leaf holds %d copies", n)
	}
}
