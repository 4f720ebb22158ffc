package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/depai/depai/agent/identity"
)

// Status is what an agent's card says it is doing.
type Status string

const (
	StatusOnline  Status = "online"
	StatusBusy    Status = "busy"
	StatusOffline Status = "offline" // written on a clean shutdown
)

// Pose is where a physical agent is, when it knows.
type Pose struct {
	Lat     float64   `json:"lat"`
	Lon     float64   `json:"lon"`
	Alt     float64   `json:"alt,omitempty"`
	Heading float64   `json:"heading,omitempty"` // degrees from north
	Time    time.Time `json:"time"`
}

// Card is an agent's (or a node's) entry in the registry, signed by its key.
type Card struct {
	DID       string    `json:"did"`
	Name      string    `json:"name"`
	Node      string    `json:"node"`
	Role      string    `json:"role,omitempty"`
	Tools     []string  `json:"tools,omitempty"`
	Pose      *Pose     `json:"pose,omitempty"`
	Status    Status    `json:"status"`
	Heartbeat time.Time `json:"heartbeat"`
	Sig       []byte    `json:"sig,omitempty"`
}

const cardDomain = "depai.card.v1\x00"

// signed is the byte string a card's signature covers.
func (c Card) signed() ([]byte, error) {
	c.Sig = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte(cardDomain), b...), nil
}

func (c *Card) sign(id *identity.Identity) ([]byte, error) {
	c.DID = id.DID()
	c.Heartbeat = c.Heartbeat.UTC().Round(0)
	if c.Pose != nil {
		// A copy: copies of a card share their Pose.
		p := *c.Pose
		p.Time = p.Time.UTC().Round(0)
		c.Pose = &p
	}
	msg, err := c.signed()
	if err != nil {
		return nil, err
	}
	c.Sig = id.Sign(msg)
	return json.Marshal(c)
}

// parseCard decodes and verifies a card stored under key.
func parseCard(key string, data []byte) (Card, error) {
	var c Card
	if err := decodeStrict(data, &c); err != nil {
		return Card{}, fmt.Errorf("card %q: %w", key, err)
	}
	if c.Name != key {
		return c, fmt.Errorf("card under key %q names %q", key, clip(c.Name))
	}
	if len(c.Sig) == 0 {
		return c, fmt.Errorf("card %q is unsigned", key)
	}
	msg, err := c.signed()
	if err != nil {
		return c, err
	}
	if err := identity.Verify(c.DID, msg, c.Sig); err != nil {
		return c, fmt.Errorf("card %q claims %s but its signature does not verify against that key: %w", key, clip(c.DID), err)
	}
	return c, nil
}

// registry keeps the fleet's cards: a cache fed by a watch on the bucket,
// and the heartbeats of the local agents and the node.
type registry struct {
	n *Node

	mu     sync.Mutex // guards kv, byName, misses, ready
	kv     jetstream.KeyValue
	byName map[string]Card
	// misses remembers (did, name) pairs the bucket did not confirm, for a
	// moment, so a flood from outside the fleet costs one lookup, not one
	// per message.
	misses map[string]time.Time
	ready  chan struct{} // closed once kv is set
}

const (
	missTTL   = 2 * time.Second
	maxMisses = 4096
)

func newRegistry(n *Node) *registry {
	return &registry{n: n, byName: map[string]Card{}, misses: map[string]time.Time{}, ready: make(chan struct{})}
}

func (r *registry) start() { r.n.goSafe(r.run) }

// bucket waits for the bucket to be open (on a leaf whose hub is away, that
// may be a while).
func (r *registry) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	select {
	case <-r.ready:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.kv, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("mesh: registry not reachable yet: %w", ctx.Err())
	}
}

// run opens (creating when missing) the bucket, then keeps heartbeats and
// the watch going, retrying both until the node shuts down.
func (r *registry) run() {
	n := r.n
	ctx := n.ctx
	var kv jetstream.KeyValue
	err := retry(ctx, n.log, "registry bucket", func() error {
		var err error
		kv, err = ensureBucket(ctx, n.js, jetstream.KeyValueConfig{
			Bucket: registryBucket, Description: "depai agent cards", History: 1,
			TTL: n.cfg.RegistryTTL, Storage: jetstream.FileStorage, Replicas: n.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return
	}
	r.mu.Lock()
	r.kv = kv
	close(r.ready)
	r.mu.Unlock()
	n.goSafe(r.heartbeats)
	for ctx.Err() == nil {
		if err := r.watch(ctx, kv); err != nil && ctx.Err() == nil {
			n.log.Debug("registry watch restarts", "err", err)
			sleepCtx(ctx, 250*time.Millisecond)
		}
	}
}

func (r *registry) watch(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil {
				continue // the initial values are in
			}
			r.apply(e)
		}
	}
}

func (r *registry) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		r.mu.Lock()
		delete(r.byName, e.Key())
		r.mu.Unlock()
		return
	}
	c, err := parseCard(e.Key(), e.Value())
	if err != nil {
		r.n.reject(Rejection{Time: time.Now(), Reason: ReasonBadCard, Detail: err.Error(), Subject: "$KV." + registryBucket + "." + e.Key(),
			Agent: r.n.cfg.Name, From: clip(c.DID), FromName: clip(c.Name), Size: len(e.Value())})
		return
	}
	r.mu.Lock()
	r.byName[c.Name] = c
	r.mu.Unlock()
}

// live reports whether a card's heartbeat is recent enough. The bucket's
// TTL removes stale cards too, but a watcher is not told.
func (r *registry) live(c Card) bool {
	return c.Status != StatusOffline && time.Since(c.Heartbeat) < r.n.cfg.RegistryTTL
}

// has reports whether a live, verified card binds name to did.
func (r *registry) has(did, name string) bool {
	r.mu.Lock()
	c, ok := r.byName[name]
	r.mu.Unlock()
	if ok && c.DID == did {
		return true
	}
	miss := did + "\x00" + name
	r.mu.Lock()
	at, missed := r.misses[miss]
	r.mu.Unlock()
	if missed && time.Since(at) < missTTL {
		return false
	}
	// A card written a moment ago may not have reached the watch yet.
	ctx, cancel := context.WithTimeout(r.n.ctx, time.Second)
	defer cancel()
	c, ok = r.fetch(ctx, name)
	if ok && c.DID == did {
		return true
	}
	r.mu.Lock()
	if len(r.misses) >= maxMisses {
		clear(r.misses)
	}
	r.misses[miss] = time.Now()
	r.mu.Unlock()
	return false
}

// lookup returns the live card of name, from the cache or the bucket.
func (r *registry) lookup(ctx context.Context, name string) (Card, bool) {
	r.mu.Lock()
	c, ok := r.byName[name]
	r.mu.Unlock()
	if ok && r.live(c) {
		return c, true
	}
	return r.fetch(ctx, name)
}

func (r *registry) fetch(ctx context.Context, name string) (Card, bool) {
	if CheckName(name) != nil {
		return Card{}, false
	}
	kv, err := r.bucket(ctx)
	if err != nil {
		return Card{}, false
	}
	e, err := kv.Get(ctx, name)
	if err != nil {
		return Card{}, false
	}
	r.apply(e)
	r.mu.Lock()
	c, ok := r.byName[name]
	r.mu.Unlock()
	return c, ok && r.live(c)
}

// heartbeats writes every local agent's card, and the node's, every
// RegistryTTL/3. Each agent writes its own card on its own connection:
// its permissions allow only its own key.
func (r *registry) heartbeats() {
	n := r.n
	tick := time.NewTicker(n.cfg.RegistryTTL / 3)
	defer tick.Stop()
	for {
		r.beatAll()
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *registry) beatAll() {
	n := r.n
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RegistryTTL/3)
	defer cancel()
	nodeCard := Card{Name: n.cfg.Name, Node: n.cfg.Name, Role: "node", Status: StatusOnline}
	if err := r.put(ctx, n.js, n.cfg.Node, nodeCard); err != nil && ctx.Err() == nil {
		n.log.Debug("node heartbeat failed", "err", err)
	}
	n.mu.Lock()
	agents := make([]*Agent, 0, len(n.agents))
	for _, a := range n.agents {
		agents = append(agents, a)
	}
	n.mu.Unlock()
	for _, a := range agents {
		if err := a.beat(ctx); err != nil && ctx.Err() == nil {
			n.log.Debug("heartbeat failed", "agent", a.Name(), "err", err)
		}
	}
}

func (r *registry) put(ctx context.Context, js jetstream.JetStream, id *identity.Identity, c Card) error {
	c.Heartbeat = time.Now()
	data, err := c.sign(id)
	if err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, registryBucket)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, c.Name, data); err != nil {
		return err
	}
	r.mu.Lock()
	r.byName[c.Name] = c
	r.mu.Unlock()
	return nil
}

// offline marks every local card offline, best effort, at shutdown.
func (r *registry) offline(agents []*Agent) {
	select {
	case <-r.ready:
	default:
		return
	}
	if r.n.cfg.Mode == ModeLeaf && r.n.srv != nil && r.n.srv.NumLeafNodes() == 0 {
		return // the hub is out of reach: the cards lapse with their TTL instead of holding up the shutdown
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range agents {
		a.mu.Lock()
		a.card.Status = StatusOffline
		c := a.card
		a.mu.Unlock()
		wg.Go(func() { _ = r.put(ctx, a.js, a.cfg.Identity, c) })
	}
	wg.Wait()
}

// beat writes the agent's card now.
func (a *Agent) beat(ctx context.Context) error {
	a.mu.Lock()
	c := a.card
	c.Tools = slices.Clone(c.Tools)
	a.mu.Unlock()
	return a.node.reg.put(ctx, a.js, a.cfg.Identity, c)
}

// SetStatus changes the agent's status and writes its card at once.
func (a *Agent) SetStatus(ctx context.Context, s Status) error {
	a.mu.Lock()
	a.card.Status = s
	a.mu.Unlock()
	return a.beat(ctx)
}

// SetTools replaces the tools the agent's card lists (plugins load after
// the agent joins) and writes its card at once.
func (a *Agent) SetTools(ctx context.Context, tools []string) error {
	a.mu.Lock()
	a.card.Tools = slices.Clone(tools)
	a.mu.Unlock()
	return a.beat(ctx)
}

// SetPose records where the agent is and writes its card at once.
func (a *Agent) SetPose(ctx context.Context, p Pose) error {
	a.mu.Lock()
	a.card.Pose = &p
	a.mu.Unlock()
	return a.beat(ctx)
}

// Cards lists the live cards of the fleet (agents and nodes), by name.
func (n *Node) Cards(ctx context.Context) ([]Card, error) {
	kv, err := n.reg.bucket(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("mesh: registry: %w", err)
	}
	var out []Card
	for k := range keys.Keys() {
		if c, ok := n.reg.lookup(ctx, k); ok {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Card) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// WatchCards yields every verified card as it is written, starting with
// the current ones, until ctx ends. Cards that do not verify are refused
// (and reported by the node's own watch), never yielded.
func (n *Node) WatchCards(ctx context.Context) iter.Seq2[Card, error] {
	return func(yield func(Card, error) bool) {
		kv, err := n.reg.bucket(ctx)
		if err != nil {
			yield(Card{}, err)
			return
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			yield(Card{}, fmt.Errorf("mesh: registry watch: %w", err))
			return
		}
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				if c, err := parseCard(e.Key(), e.Value()); err == nil && !yield(c, nil) {
					return
				}
			}
		}
	}
}

// retry calls f until it succeeds or ctx ends, backing off to 2 s.
func retry(ctx context.Context, log interface{ Debug(string, ...any) }, what string, f func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Debug("retrying", "what", what, "err", err)
		sleepCtx(ctx, wait)
		wait = min(wait*2, 2*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ensureStream opens a stream, creating it when missing. An existing stream
// is not updated: every node starting would rewrite the same config, and
// nats-server 2.15.2 races (under -race) between a stream's config update
// and a consumer being added to it.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.Stream(ctx, cfg.Name)
		}
	}
	return s, err
}

// ensureBucket is ensureStream for a KV bucket.
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			return js.KeyValue(ctx, cfg.Bucket)
		}
	}
	return kv, err
}
