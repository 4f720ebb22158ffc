package mesh

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestRegistryListsCardsAndHeartbeats(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "bob"), RegistryTTL: 900 * time.Millisecond})
	registered(t, n, "alice")
	registered(t, n, "bob")
	ctx := context.Background()
	if err := mustAgent(t, n, "bob").SetPose(ctx, Pose{Lat: 48.1, Lon: 11.5, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cards, err := n.Cards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cards {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"alice", "bob", "n1"}) {
		t.Fatalf("cards %v", names)
	}
	bob := cards[1]
	if bob.DID != mustAgent(t, n, "bob").DID() || bob.Node != "n1" || bob.Pose == nil || bob.Pose.Lat != 48.1 || bob.Tools[0] != "bob.tool" || bob.Status != StatusOnline {
		t.Fatalf("bob's card %+v", bob)
	}
	// Heartbeats outlive the TTL.
	first := bob.Heartbeat
	time.Sleep(1200 * time.Millisecond)
	c, ok := n.reg.lookup(ctx, "bob")
	if !ok || !c.Heartbeat.After(first) {
		t.Fatalf("after the TTL: %+v %v", c, ok)
	}
}

// A card that claims another agent's DID — signed by a different key — or
// names another agent than its key is refused and reported; the real
// agent's card stays.
func TestRegistryRefusesAForgedCard(t *testing.T) {
	var rej rejections
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice", "mallory"), OnReject: rej.add})
	registered(t, n, "alice")
	registered(t, n, "mallory")
	ctx := context.Background()
	mallory := mustAgent(t, n, "mallory")
	alice := mustAgent(t, n, "alice")
	kv, err := mallory.js.KeyValue(ctx, registryBucket)
	if err != nil {
		t.Fatal(err)
	}
	// mallory's key, alice's DID, under mallory's own key (the only one she may write).
	c := Card{Name: "mallory", Node: "n1", Status: StatusOnline, Heartbeat: time.Now()}
	data, _ := c.sign(mallory.cfg.Identity)
	var forged Card
	json.Unmarshal(data, &forged)
	forged.DID = alice.DID()
	bad, _ := json.Marshal(forged)
	before := len(rej.list())
	if _, err := kv.Put(ctx, "mallory", bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the forged card to be refused", func() bool { return len(rej.list()) > before })
	if r := rej.list()[before]; r.Reason != ReasonBadCard || r.From != alice.DID() {
		t.Fatalf("rejection %+v", r)
	}
	// A card naming alice, signed by mallory, under mallory's key.
	c = Card{Name: "alice", Node: "n1", Status: StatusOnline, Heartbeat: time.Now()}
	data, _ = c.sign(mallory.cfg.Identity)
	before = len(rej.list())
	kv.Put(ctx, "mallory", data)
	waitFor(t, 5*time.Second, "the misnamed card to be refused", func() bool { return len(rej.list()) > before })
	// Writing alice's key is not even allowed by NATS.
	if _, err := kv.Put(ctx, "alice", data); err == nil {
		t.Fatal("mallory wrote alice's registry key")
	}
	got, ok := n.reg.lookup(ctx, "alice")
	if !ok || got.DID != alice.DID() {
		t.Fatalf("alice's card after the forgeries: %+v %v", got, ok)
	}
	// And a message from mallory's key claiming to be alice is foreign.
	if n.isMember(mallory.DID(), "alice") {
		t.Fatal("mallory's DID passes as alice")
	}
}

func TestWatchCardsSeesNewCards(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice")})
	registered(t, n, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := map[string]bool{}
	go func() {
		time.Sleep(100 * time.Millisecond)
		mustAgent(t, n, "alice").SetStatus(context.Background(), StatusBusy)
	}()
	for c, err := range n.WatchCards(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		seen[c.Name] = true
		if c.Name == "alice" && c.Status == StatusBusy {
			return
		}
	}
	t.Fatalf("no busy card for alice; saw %v", seen)
}

// A sender the registry does not know is looked up in the bucket once, then
// refused from memory for a moment: a flood from outside the fleet costs
// one lookup, not one per message.
func TestUnknownSenderIsLookedUpOnce(t *testing.T) {
	n := startNode(t, Config{Name: "n1", DataDir: t.TempDir(), Agents: agents(t, "alice")})
	registered(t, n, "alice")
	stranger := key(t, "stranger")
	if n.isMember(stranger.DID(), "ghost") {
		t.Fatal("a stranger is a member")
	}
	n.reg.mu.Lock()
	_, cached := n.reg.misses[stranger.DID()+"\x00ghost"]
	n.reg.mu.Unlock()
	if !cached {
		t.Fatal("the miss was not remembered")
	}
	// A real card appears: within missTTL the cached refusal still stands, after it the card counts.
	c := Card{Name: "ghost", Node: "n1", Status: StatusOnline, Heartbeat: time.Now()}
	if err := n.reg.put(context.Background(), n.js, stranger, c); err != nil {
		t.Fatal(err)
	}
	n.reg.mu.Lock()
	delete(n.reg.byName, "ghost") // as if the watch had not delivered it yet
	n.reg.mu.Unlock()
	if n.reg.has(stranger.DID(), "ghost") {
		t.Fatal("the cached miss was not used")
	}
	n.reg.mu.Lock()
	n.reg.misses[stranger.DID()+"\x00ghost"] = time.Now().Add(-missTTL)
	n.reg.mu.Unlock()
	if !n.reg.has(stranger.DID(), "ghost") {
		t.Fatal("after missTTL the bucket is asked again")
	}
}
