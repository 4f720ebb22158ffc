package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/identity"
	"github.com/depai/depai/agent/mesh"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
	"github.com/depai/depai/sdk/wire"
)

// MeshOptions (Options.Mesh) let a fleet join the fleet on NATS as its
// config's mesh: section says: each agent connects as itself, publishes
// its card, serves asks and tasks, and the shared namespaces replicate.
// With Options.Mesh nil, or mesh.mode off, the fleet ends at the process.
type MeshOptions struct {
	// Keys returns the key pair of an agent or of this node, by name,
	// creating it on first use. Nil: unsealed keys in DataDir/identity.
	// cmd/depai seals them with a passphrase from its environment.
	Keys func(name string) (*identity.Identity, error)
}

// fleetMesh is the fleet's part of the mesh; nil when the mesh is off.
type fleetMesh struct {
	node   *mesh.Node
	agents map[string]*mesh.Agent // written once in joinMesh, read-only after
}

// Task kinds the fleet's agents serve.
const (
	taskGoal = "depai.goal" // Input: goalInput; run as a turn of the assignee
	taskCall = "depai.call" // Input: callInput; one tool call through the assignee's policy
)

type goalInput struct {
	Goal  string `json:"goal"`
	Depth int    `json:"depth,omitempty"` // of the input that delegated it
	// An open offer's terms: the role that may bid, and where the work is
	// (robots bid their distance to it).
	Role string  `json:"role,omitempty"`
	Near *LatLon `json:"near,omitempty"`
}

// LatLon is a position in degrees.
type LatLon struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// bidWindow is how long a delegator collects bids on an open offer after
// the first arrives before it awards the task.
const bidWindow = 300 * time.Millisecond

type callInput struct {
	Tool  string          `json:"tool"`
	Args  json.RawMessage `json:"args"`
	Depth int             `json:"depth,omitempty"`
}

// askPayload is a depai.ask request; askAnswer its reply, with the turn's
// error when it failed.
type askPayload struct {
	Text string `json:"text"`
}

type askAnswer struct {
	Agent string     `json:"agent"`
	Reply string     `json:"reply,omitempty"`
	Error *TurnError `json:"error,omitempty"`
}

// joinMesh starts this process's node with every agent of the fleet on it,
// and routes asks and tasks to the agents. It does nothing when the mesh
// is off.
func (f *Fleet) joinMesh(ctx context.Context) error {
	mo := f.opts.Mesh
	if mo == nil || !f.file.Mesh.On() {
		return nil
	}
	keys := mo.Keys
	if keys == nil {
		keys = func(name string) (*identity.Identity, error) {
			path, err := identity.KeyPath(f.opts.DataDir, name)
			if err != nil {
				return nil, err
			}
			id, _, err := identity.LoadOrCreate(identity.Config{Path: path})
			return id, err
		}
	}
	cfg, err := f.meshConfig(keys)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	node, err := mesh.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fm := &fleetMesh{node: node, agents: map[string]*mesh.Agent{}}
	f.mesh = fm
	for _, a := range f.agents {
		ma, _ := node.Agent(a.Name())
		fm.agents[a.Name()] = ma
		if err := ma.Serve(mesh.HandlerFunc(a.serveAsk)); err != nil {
			return err
		}
		if err := ma.ServeTasks(mesh.TaskHandlerFunc(a.serveTask)); err != nil {
			return err
		}
		if err := a.addFleetTools(); err != nil {
			return err
		}
	}
	f.goBG(f.publishCards)
	if len(cfg.Shared) > 0 {
		f.watchReplication(cfg.Shared)
	}
	f.log.Info("joined the fleet", "node", f.file.NodeName(), "mode", f.file.Mesh.Mode, "nats", node.ClientURL(), "node_did", cfg.Node.DID())
	return nil
}

// leaveMesh marks the cards offline and stops the node; the agents have
// stopped by then.
func (f *Fleet) leaveMesh() {
	if f.mesh != nil {
		f.mesh.node.Shutdown()
	}
}

// Mesh is the fleet's node, nil when the mesh is off.
func (f *Fleet) Mesh() *mesh.Node {
	if f.mesh == nil {
		return nil
	}
	return f.mesh.node
}

// meshConfig turns the config's mesh: section into the node's config.
func (f *Fleet) meshConfig(keys func(string) (*identity.Identity, error)) (mesh.Config, error) {
	m := f.file.Mesh
	name := f.file.NodeName()
	node, err := keys(name)
	if err != nil {
		return mesh.Config{}, fmt.Errorf("node %s: key: %w", name, err)
	}
	cfg := mesh.Config{
		Name: name, Node: node, DataDir: f.opts.DataDir, LeafNodes: m.LeafNodes, Hub: m.Hub, URLs: m.URLs,
		Credentials: m.Credentials, Members: m.Members, Logger: f.log,
		OnReject: f.auditRejection,
	}
	switch m.Mode {
	case config.MeshEmbedded, "":
		cfg.Mode = mesh.ModeEmbedded
	case config.MeshHub:
		cfg.Mode, cfg.LeafListen = mesh.ModeEmbedded, m.LeafListen
	case config.MeshLeaf:
		cfg.Mode = mesh.ModeLeaf
	case config.MeshExternal:
		cfg.Mode = mesh.ModeExternal
	}
	if m.Listen != "" {
		host, port, err := net.SplitHostPort(m.Listen)
		if err != nil {
			return cfg, fmt.Errorf("mesh.listen %q: %w", m.Listen, err)
		}
		cfg.Host = host
		if cfg.Port, err = strconv.Atoi(port); err != nil {
			return cfg, fmt.Errorf("mesh.listen %q: port: %w", m.Listen, err)
		}
	}
	if m.TLS != (config.MeshTLS{}) {
		tc, err := loadTLS(m.TLS, cfg.Mode == mesh.ModeEmbedded)
		if err != nil {
			return cfg, err
		}
		cfg.TLS, cfg.HubTLS, cfg.LeafTLS = tc, tc, tc
	}
	if len(m.Shared) > 0 {
		rs, ok := f.store.(mesh.ReplicaStore)
		if !ok {
			return cfg, fmt.Errorf("mesh.shared: the store given in Options.Store (%T) cannot take replicated records (it needs Import, as memory.DB has)", f.store)
		}
		cfg.Shared, cfg.Store = m.Shared, rs
	}
	for _, a := range f.agents {
		id, err := keys(a.Name())
		if err != nil {
			return cfg, fmt.Errorf("agent %s: key: %w", a.Name(), err)
		}
		cfg.Agents = append(cfg.Agents, mesh.AgentConfig{Name: a.Name(), Identity: id, Role: a.cfg.Role, Tools: a.toolNames()})
	}
	return cfg, nil
}

// loadTLS reads the mesh's PEM files: a CA to verify the other side, and
// a certificate to present (a hub serves it on its leaf port).
func loadTLS(t config.MeshTLS, server bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("mesh.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mesh.tls.ca: %s holds no PEM certificate", t.CA)
		}
		tc.RootCAs = pool
		if server {
			tc.ClientCAs = pool
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("mesh.tls.cert/key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// auditRejection puts a refused fleet message in the audit log, so that a
// forged, replayed or flooding sender is on record where operators look.
func (f *Fleet) auditRejection(r mesh.Rejection) {
	who := r.FromName
	if who == "" {
		who = r.From
	}
	e := policy.Entry{
		Agent: r.Agent, Principal: policy.Principal{Kind: policy.PrincipalAgent, ID: who}, Kind: policy.ActionMessage,
		Action: "mesh.receive", Target: r.Subject, Phase: policy.PhaseDecision, Decision: policy.Deny,
		Rule: "mesh." + string(r.Reason), Reason: r.Detail,
	}
	if _, err := f.audit.Write(f.bgCtx, e); err != nil {
		f.log.Error("audit: refused fleet message not recorded", "reason", r.Reason, "from", who, "err", err)
	}
}

// toolNames are the agent's tools, for its card.
func (a *Agent) toolNames() []string {
	specs := a.tools.Specs()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

// publishCards keeps each agent's card current: its tools once plugins
// have loaded, its robot's pose and its status as they change.
func (f *Fleet) publishCards() {
	ctx := f.bgCtx
	type sent struct {
		tools  int
		pose   time.Time
		status mesh.Status
	}
	last := map[string]*sent{}
	for _, a := range f.agents {
		last[a.Name()] = &sent{tools: -1, status: mesh.StatusOnline}
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		for _, a := range f.agents {
			ma, s := f.mesh.agents[a.Name()], last[a.Name()]
			if a.plugins.done() && s.tools != a.tools.Len() {
				if ma.SetTools(ctx, a.toolNames()) == nil {
					s.tools = a.tools.Len()
				}
			}
			if p, ok := f.poses.get(a.Name()); ok && p.Time.After(s.pose) {
				if ma.SetPose(ctx, mesh.Pose{Lat: p.Lat, Lon: p.Lon, Heading: p.HeadingDeg, Time: p.Time}) == nil {
					s.pose = p.Time
				}
			}
			st := mesh.StatusOnline
			if a.running() > 0 {
				st = mesh.StatusBusy
			}
			if st != s.status && ma.SetStatus(ctx, st) == nil {
				s.status = st
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchReplication reports the replication lag of the shared records
// that other nodes' agents wrote: from their commit there (Recorded, which
// replication keeps) to their commit here.
func (f *Fleet) watchReplication(shared []string) {
	ctx := f.bgCtx
	var from uint64
	if s, ok := f.store.(interface{ LastSeq() uint64 }); ok {
		from = s.LastSeq()
	}
	for _, ns := range shared {
		f.goBG(func() {
			for r, err := range f.store.Watch(ctx, memory.Query{Namespace: ns, AfterSeq: from}) {
				if err != nil {
					return
				}
				if _, local := f.byName[r.Author]; !local {
					f.opts.Metrics.ReplicationLag(time.Since(r.Recorded))
				}
			}
		})
	}
}

// serveAsk answers another agent's depai.ask with a turn of this agent:
// the envelope's hop count is the input's depth, so the core's depth limit
// ends chains the hop limit has not.
func (a *Agent) serveAsk(ctx context.Context, env mesh.Envelope) (json.RawMessage, error) {
	var p askPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil || strings.TrimSpace(p.Text) == "" {
		return nil, fmt.Errorf("invalid: %s payload: want {\"text\": \"…\"}", env.Schema)
	}
	reply, err := a.Ask(ctx, Input{Source: SourceAgent, From: env.FromName, Text: p.Text, Cause: env.Nonce, Depth: env.Hops})
	out := askAnswer{Agent: a.cfg.Name, Reply: reply}
	var te *TurnError
	switch {
	case errors.As(err, &te):
		out.Error = te
	case err != nil:
		return nil, err
	}
	return json.Marshal(out)
}

// askOverMesh is /ask for an agent of another node.
func (a *Agent) askOverMesh(ctx context.Context, name, text string) (any, string, error) {
	ma := a.fleet.mesh.agents[a.cfg.Name]
	depth, _ := depthFrom(ctx)
	p, _ := json.Marshal(askPayload{Text: text})
	env, err := ma.Ask(ctx, name, p, mesh.AskOptions{Hops: depth})
	if err != nil {
		return nil, "", meshError(name, err)
	}
	var ans askAnswer
	if err := json.Unmarshal(env.Payload, &ans); err != nil {
		return nil, "", &commandError{code: CodeInvalid, msg: fmt.Sprintf("%s answered with a malformed reply: %v", name, err)}
	}
	if ans.Error != nil {
		return nil, "", &commandError{code: ans.Error.Code, msg: name + ": " + ans.Error.Message}
	}
	return map[string]string{"agent": name, "reply": ans.Reply}, name + ": " + ans.Reply, nil
}

// meshError is a mesh failure as a command's error with a code.
func meshError(name string, err error) error {
	var re *mesh.RemoteError
	var rej *mesh.RejectError
	switch {
	case errors.Is(err, mesh.ErrUnknownPeer):
		return &commandError{code: CodeInvalid, msg: fmt.Sprintf("no agent %q on this node or in the fleet's registry (/agents lists them)", name)}
	case errors.Is(err, mesh.ErrUnreachable), errors.Is(err, mesh.ErrClosed):
		return &commandError{code: CodeUnavailable, msg: err.Error()}
	case errors.Is(err, mesh.ErrTimeout):
		return &commandError{code: CodeModelTimeout, msg: err.Error()}
	case errors.As(err, &re):
		code := CodeToolFailed
		if re.Code == string(mesh.ReasonHops) {
			code = CodeDenied
		}
		return &commandError{code: code, msg: err.Error()}
	case errors.As(err, &rej):
		return &commandError{code: CodeDenied, msg: err.Error()}
	}
	return err
}

// serveTask is an agent's side of the fleet's tasks: it accepts what is
// offered to it and runs it; as a delegator it stores the outcome of its
// tasks in its namespace, where the operator and the model find them.
func (a *Agent) serveTask(ctx context.Context, u mesh.TaskUpdate) {
	t := u.Task
	switch {
	case (u.Event == mesh.EventOffer || u.Event == mesh.EventAward) && t.To == a.cfg.Name:
		if _, err := a.fleet.mesh.agents[a.cfg.Name].Accept(ctx, t.ID); err != nil {
			a.log.Warn("task not accepted", "task", t.ID, "from", t.From, "err", err)
			return
		}
		// Off the task queue: a long task must not hold back the agent's
		// other task updates.
		a.fleet.goBG(func() { a.runTask(a.fleet.bgCtx, t) })
	case u.Event == mesh.EventOffer && t.To == "" && t.From != a.cfg.Name:
		a.bid(ctx, t)
	case u.Event == mesh.EventBid && t.From == a.cfg.Name && t.To == "" && len(t.Bids) == 1:
		// The first bid opens the window; the best bid in it wins.
		a.fleet.goBG(func() { a.award(a.fleet.bgCtx, t.ID) })
	case u.Event == mesh.EventResume && t.To == a.cfg.Name:
		// Accepted before a restart: run it again. A task's first result
		// is the one kept; a second is refused by the task's rules.
		a.fleet.goBG(func() { a.runTask(a.fleet.bgCtx, t) })
	case t.From == a.cfg.Name && t.State.Terminal():
		a.recordOutcome(ctx, t)
	}
}

// bid answers an open goal offer this agent can take: one of the role it
// names, not stopped, not under teleop; a robot bids its distance to where the work is (its
// Price, in metres; -1 without a pose or a place).
func (a *Agent) bid(ctx context.Context, t mesh.Task) {
	var in goalInput
	if t.Kind != taskGoal || json.Unmarshal(t.Input, &in) != nil || in.Role != "" && in.Role != a.cfg.Role || a.fleet.policy.Stopped() {
		return
	}
	rs := a.robotState()
	if rs != nil && rs.Teleop != "" {
		return // an operator drives it; the model may not
	}
	b := mesh.Bid{Price: -1, Note: "position unknown"}
	if in.Near != nil && rs != nil && !rs.Stale && !rs.Time.IsZero() {
		b.Price = math.Round(haversineM(in.Near.Lat, in.Near.Lon, rs.Lat, rs.Lon))
		b.Note = fmt.Sprintf("%.0f m away", b.Price)
	}
	if _, err := a.fleet.mesh.agents[a.cfg.Name].Bid(ctx, t.ID, b); err != nil {
		a.log.Warn("bid not placed", "task", t.ID, "from", t.From, "err", err)
	}
}

// award gives an open offer, once the bid window has passed, to its best
// bidder: the nearest robot, then any bidder in the order they bid.
func (a *Agent) award(ctx context.Context, id string) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(bidWindow):
	}
	t, ok := a.fleet.mesh.node.Task(id)
	if !ok || t.To != "" || t.State != mesh.TaskOffered || len(t.Bids) == 0 {
		return
	}
	best := t.Bids[0]
	for _, b := range t.Bids[1:] {
		if b.Price >= 0 && (best.Price < 0 || b.Price < best.Price) {
			best = b
		}
	}
	if _, err := a.fleet.mesh.agents[a.cfg.Name].Award(ctx, id, best.Agent); err != nil {
		a.log.Warn("task not awarded", "task", id, "to", best.Agent, "err", err)
		return
	}
	a.log.Info("task awarded", "task", id, "to", best.Agent, "bids", len(t.Bids), "note", best.Note)
}

// runTask runs one accepted task and reports its result or failure.
func (a *Agent) runTask(ctx context.Context, t mesh.Task) {
	ma := a.fleet.mesh.agents[a.cfg.Name]
	ctx, cancel := context.WithDeadline(ctx, t.Deadline)
	defer cancel()
	out, err := a.doTask(ctx, t)
	rctx := context.WithoutCancel(ctx)
	if err != nil {
		if _, ferr := ma.Fail(rctx, t.ID, err.Error()); ferr != nil {
			a.log.Warn("task failure not reported", "task", t.ID, "err", ferr)
		}
		return
	}
	if _, err := ma.Complete(rctx, t.ID, out); err != nil {
		a.log.Warn("task result not reported", "task", t.ID, "err", err)
	}
}

// taskResult is the output of a task this fleet runs.
type taskResult struct {
	Agent  string          `json:"agent"`
	Reply  string          `json:"reply,omitempty"`  // a goal's turn
	Tool   string          `json:"tool,omitempty"`   // a call's tool
	Output json.RawMessage `json:"output,omitempty"` // and its answer
	Robot  *RobotState     `json:"robot,omitempty"`  // where the robot is once done
}

func (a *Agent) doTask(ctx context.Context, t mesh.Task) (json.RawMessage, error) {
	res := taskResult{Agent: a.cfg.Name}
	switch t.Kind {
	case taskCall:
		var in callInput
		if err := json.Unmarshal(t.Input, &in); err != nil || in.Tool == "" {
			return nil, fmt.Errorf("invalid %s input: want {\"tool\": NAME, \"args\": {…}}", taskCall)
		}
		// As any input another agent causes: chains past the depth limit end here, on record.
		if _, err := a.fleet.policy.Authorize(ctx, policy.Action{Agent: a.cfg.Name, Principal: policy.Principal{Kind: policy.PrincipalAgent, ID: t.From},
			Kind: policy.ActionMessage, Name: "input", Target: t.ID, Depth: in.Depth + 1}); err != nil {
			return nil, err
		}
		if err := a.plugins.wait(ctx); err != nil {
			return nil, err
		}
		out, err := a.invoke(ctx, in.Tool, in.Args, policy.Principal{Kind: policy.PrincipalAgent, ID: t.From})
		if err != nil {
			return nil, err
		}
		res.Tool, res.Output = in.Tool, out
	default:
		var in goalInput
		if err := json.Unmarshal(t.Input, &in); err != nil || strings.TrimSpace(in.Goal) == "" {
			return nil, fmt.Errorf("invalid %s input: want {\"goal\": \"…\"}", taskGoal)
		}
		reply, err := a.Ask(ctx, Input{Source: SourceAgent, From: t.From, Text: in.Goal, Cause: t.ID, Depth: in.Depth + 1})
		if err != nil {
			return nil, err
		}
		res.Reply = reply
	}
	res.Robot = a.robotState()
	return json.Marshal(res)
}

// recordOutcome stores how a task this agent delegated ended. The task's
// ID is the record's key, so a task told twice (after a restart) is one
// fact, not two.
func (a *Agent) recordOutcome(ctx context.Context, t mesh.Task) {
	text := fmt.Sprintf("task %s (%s) by %s: %s", t.ID, t.Kind, t.To, t.State)
	if t.Error != "" {
		text += ": " + t.Error
	}
	if len(t.Output) > 0 {
		text += ": " + string(t.Output)
	}
	data, _ := json.Marshal(t)
	ns := a.ns + "/tasks"
	var seq uint64
	if cur, err := a.fleet.store.Fact(ctx, ns, t.ID); err == nil {
		if cur.Text == text {
			return
		}
		seq = cur.Seq
	}
	if _, err := a.fleet.store.PutFact(ctx, memory.Record{Namespace: ns, Kind: memory.KindFact, Key: t.ID, Author: a.cfg.Name, Text: text, Data: data, Tags: []string{"task:" + string(t.State)}}, seq); err != nil {
		a.log.Warn("task outcome not stored", "task", t.ID, "err", err)
	}
}

// delegate offers a task to another agent of the fleet.
func (a *Agent) delegate(ctx context.Context, to, kind string, input any, timeout time.Duration) (mesh.Task, error) {
	if a.fleet.mesh == nil {
		return mesh.Task{}, errMeshOff
	}
	p, err := json.Marshal(input)
	if err != nil {
		return mesh.Task{}, err
	}
	return a.fleet.mesh.agents[a.cfg.Name].Delegate(ctx, mesh.Offer{To: to, Kind: kind, Input: p, Timeout: timeout})
}

var errMeshOff = &commandError{code: CodeUnavailable, msg: "the fleet mesh is off: this process's agents are the whole fleet. Turn it on with mesh: {mode: embedded} (the default for depai run) or mode hub/leaf/external in the config file"}

// TaskInfo is one task as /tasks shows it.
type TaskInfo struct {
	ID      string          `json:"id"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	State   string          `json:"state"`
	Goal    string          `json:"goal"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// TasksReport is what /tasks answers.
type TasksReport struct {
	Tasks []TaskInfo `json:"tasks"`
}

func taskInfo(t mesh.Task) TaskInfo {
	goal := t.Kind
	var g goalInput
	var c callInput
	switch {
	case t.Kind == taskGoal && json.Unmarshal(t.Input, &g) == nil:
		goal = g.Goal
	case t.Kind == taskCall && json.Unmarshal(t.Input, &c) == nil:
		goal = c.Tool + " " + string(c.Args)
	}
	return TaskInfo{ID: t.ID, From: t.From, To: t.To, State: string(t.State), Goal: goal, Created: t.Created, Updated: t.Updated, Result: t.Output, Error: t.Error}
}

// tasksCommand is /tasks [AGENT] [STATE]: the fleet's tasks, newest first.
func tasksCommand(_ context.Context, a *Agent, c call) (any, string, error) {
	if a.fleet.mesh == nil {
		return nil, "", errMeshOff
	}
	var f mesh.TaskFilter
	for w := range strings.FieldsSeq(c.args) {
		switch mesh.TaskState(w) {
		case mesh.TaskOffered, mesh.TaskAccepted, mesh.TaskRunning, mesh.TaskDone, mesh.TaskFailed, mesh.TaskTimedOut:
			f.State = mesh.TaskState(w)
		default:
			f.Agent = w
		}
	}
	r := TasksReport{Tasks: []TaskInfo{}}
	for _, t := range a.fleet.mesh.node.Tasks(f) {
		r.Tasks = append(r.Tasks, taskInfo(t))
	}
	return r, formatTasks(r.Tasks), nil
}

func formatTasks(ts []TaskInfo) string {
	if len(ts) == 0 {
		return "no tasks"
	}
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "%s  %s → %s  %s  %s", t.ID, t.From, t.To, t.State, clip(t.Goal, 60))
		if t.Error != "" {
			fmt.Fprintf(&b, "  error: %s", clip(t.Error, 80))
		}
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fleetAgents is /agents with the mesh on: this node's agents, then the
// other nodes' from the registry, by name.
func (a *Agent) fleetAgents(ctx context.Context) ([]Status, error) {
	node := a.fleet.mesh.node
	cards, err := node.Cards(ctx)
	if err != nil {
		return nil, &commandError{code: CodeUnavailable, msg: "the fleet's registry is not reachable: " + err.Error()}
	}
	byName := map[string]mesh.Card{}
	for _, c := range cards {
		byName[c.Name] = c
	}
	var out []Status
	for _, o := range a.fleet.agents {
		s := o.Status()
		s.Node = a.fleet.file.NodeName()
		if c, ok := byName[o.Name()]; ok {
			s.DID, s.Heartbeat = c.DID, c.Heartbeat
		}
		out = append(out, s)
	}
	var remote []Status
	for _, c := range cards {
		if _, local := a.fleet.byName[c.Name]; local || c.Node == c.Name {
			continue // this node's, or a node's own card
		}
		s := Status{Name: c.Name, Role: c.Role, State: string(c.Status), Tools: len(c.Tools), Node: c.Node, DID: c.DID, Heartbeat: c.Heartbeat}
		if c.Pose != nil {
			s.Robot = &RobotState{Pose: policy.Pose{Lat: c.Pose.Lat, Lon: c.Pose.Lon, HeadingDeg: c.Pose.Heading, Time: c.Pose.Time}, AgeMillis: time.Since(c.Pose.Time).Milliseconds()}
		}
		remote = append(remote, s)
	}
	slices.SortFunc(remote, func(x, y Status) int { return strings.Compare(x.Name, y.Name) })
	return append(out, remote...), nil
}

func formatFleet(ss []Status, current string) string {
	var b strings.Builder
	b.WriteString(formatStatus(ss, current))
	b.WriteString("\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(w, "  AGENT\tNODE\tSTATE\tLAST HEARTBEAT")
	for _, s := range ss {
		hb := "-"
		if !s.Heartbeat.IsZero() {
			hb = time.Since(s.Heartbeat).Round(100*time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(w, "\n  %s\t%s\t%s\t%s", s.Name, s.Node, s.State, hb)
	}
	w.Flush()
	return b.String()
}

type delegateArgs struct {
	To       string  `json:"to,omitempty" jsonschema:"the agent to give the task to (fleet.status lists the fleet); empty: an open offer the fleet's agents bid on, awarded to the best bid"`
	Goal     string  `json:"goal" jsonschema:"what the agent is to do, in words"`
	Role     string  `json:"role,omitempty" jsonschema:"an open offer's bidders: robot or digital (default any)"`
	Near     *LatLon `json:"near,omitempty" jsonschema:"where an open offer's work is: the nearest robot wins it"`
	TimeoutS float64 `json:"timeout_s,omitempty" jsonschema:"how long it has, in seconds (default 300)"`
}

type tasksArgs struct {
	Agent string `json:"agent,omitempty" jsonschema:"only tasks delegated by or to this agent"`
	State string `json:"state,omitempty" jsonschema:"only tasks in this state: offered, accepted, running, done, failed, timed_out"`
}

// addFleetTools gives the agent fleet.delegate, fleet.status and
// fleet.tasks, unless its config's tools list leaves them out. They are
// in-process tools: the model's calls pass the policy like any other.
func (a *Agent) addFleetTools() error {
	del, err := tool.New("fleet.delegate", "Give a task to another agent of the fleet, on any node; its result comes back as a task update.", tool.EffectWrite,
		func(ctx context.Context, in delegateArgs) (TaskInfo, error) {
			switch {
			case strings.TrimSpace(in.Goal) == "":
				return TaskInfo{}, &tool.Error{Code: wire.CodeInvalidArgument, Message: "fleet.delegate needs a goal"}
			case in.Role != "" && in.Role != config.RoleRobot && in.Role != config.RoleDigital:
				return TaskInfo{}, &tool.Error{Code: wire.CodeInvalidArgument, Message: fmt.Sprintf("fleet.delegate: role %q: want robot or digital", in.Role)}
			case in.To != "" && (in.Role != "" || in.Near != nil):
				return TaskInfo{}, &tool.Error{Code: wire.CodeInvalidArgument, Message: "fleet.delegate: role and near are an open offer's terms; give them without to"}
			case in.Near != nil && (!(in.Near.Lat >= -90 && in.Near.Lat <= 90) || !(in.Near.Lon >= -180 && in.Near.Lon <= 180)):
				return TaskInfo{}, &tool.Error{Code: wire.CodeInvalidArgument, Message: fmt.Sprintf("fleet.delegate: near %v,%v: want latitude -90..90 and longitude -180..180", in.Near.Lat, in.Near.Lon)}
			}
			depth, _ := depthFrom(ctx)
			t, err := a.delegate(ctx, in.To, taskGoal, goalInput{Goal: in.Goal, Depth: depth, Role: in.Role, Near: in.Near}, time.Duration(in.TimeoutS*float64(time.Second)))
			if err != nil {
				return TaskInfo{}, &tool.Error{Code: wire.CodeUnavailable, Message: err.Error()}
			}
			return taskInfo(t), nil
		})
	if err != nil {
		return err
	}
	status, err := tool.New("fleet.status", "Every agent of the fleet on every node: role, node, state, pose, last heartbeat.", tool.EffectNone,
		func(ctx context.Context, _ none) ([]Status, error) { return a.fleetAgents(ctx) })
	if err != nil {
		return err
	}
	tasks, err := tool.New("fleet.tasks", "The fleet's tasks, newest first.", tool.EffectNone,
		func(ctx context.Context, in tasksArgs) (TasksReport, error) {
			r, _, err := tasksCommand(ctx, a, call{args: strings.TrimSpace(in.Agent + " " + in.State)})
			if err != nil {
				return TasksReport{}, err
			}
			return r.(TasksReport), nil
		})
	if err != nil {
		return err
	}
	var add []tool.Tool
	for _, t := range []tool.Tool{del, status, tasks} {
		if a.cfg.Tools == nil || slices.Contains(a.cfg.Tools, t.Spec().Name) {
			add = append(add, t)
		}
	}
	return a.tools.Add(add...)
}

// RemoteAgent is an agent of another node, as this node reaches it: the
// operator API lists it and passes messages to it (an /ask through one of
// this node's agents, so the policy and audit of this node apply).
type RemoteAgent struct {
	card mesh.Card
	via  *Agent
}

// RemoteAgents are the live agents of the fleet's other nodes, by name;
// none with the mesh off.
func (f *Fleet) RemoteAgents(ctx context.Context) ([]*RemoteAgent, error) {
	if f.mesh == nil {
		return nil, nil
	}
	cards, err := f.mesh.node.Cards(ctx)
	if err != nil {
		return nil, err
	}
	var out []*RemoteAgent
	for _, c := range cards {
		if _, local := f.byName[c.Name]; local || c.Node == c.Name {
			continue
		}
		out = append(out, &RemoteAgent{card: c, via: f.agents[0]})
	}
	return out, nil
}

// Name is the agent's name.
func (r *RemoteAgent) Name() string { return r.card.Name }

// Status is what the agent's card says.
func (r *RemoteAgent) Status() Status {
	s := Status{Name: r.card.Name, Role: r.card.Role, State: string(r.card.Status), Model: "unknown (another node)", Tools: len(r.card.Tools),
		Node: r.card.Node, DID: r.card.DID, Heartbeat: r.card.Heartbeat}
	if p := r.card.Pose; p != nil {
		s.Robot = &RobotState{Pose: policy.Pose{Lat: p.Lat, Lon: p.Lon, HeadingDeg: p.Heading, Time: p.Time}, AgeMillis: time.Since(p.Time).Milliseconds()}
	}
	return s
}

// Handle sends a message to the agent over the mesh. Commands reach only
// the agents of the node they are typed on.
func (r *RemoteAgent) Handle(ctx context.Context, in Input) iter.Seq2[Event, error] {
	text := strings.TrimSpace(in.Text)
	if strings.HasPrefix(text, "/") {
		return func(yield func(Event, error) bool) {
			yield(Event{Type: EventError, Code: CodeInvalid, Error: fmt.Sprintf("%s runs on node %s: commands reach only the agents of the node they are typed on (connect depai chat to that node's operator API); a message without / reaches it from here", r.card.Name, r.card.Node)}, nil)
		}
	}
	in.Text = "/ask " + r.card.Name + " " + text
	return r.via.Handle(ctx, in)
}
