package operator_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/metrics"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/operator/console"
	"github.com/depai/depai/agent/tool"
)

// chromium is the browser the console tests drive (Debian's chromium, which
// scripts/test installs).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/test, which installs it")
	return ""
}

// artifact is where a screenshot goes: $DEPAI_ARTIFACTS, else the test's
// temp dir (named in the log).
func artifact(t *testing.T, name string, png []byte) {
	dir := os.Getenv("DEPAI_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("screenshot: %s", path)
}

// browser is a headless Chromium the test drives; it ends with the test.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func openBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser and must not carry a timeout (it
	// would stop the browser); the steps after it each get one.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return &browser{t: t, ctx: ctx}
}

// do runs steps within 30 s, or fails the test naming what.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		// What the page knew, to tell a slow fleet from a wrong view.
		seen, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify({agents: state.agents, error: document.querySelector("#error").textContent, view: document.querySelector(".view:not([hidden])").textContent.slice(0, 600)})`))
		b.t.Fatalf("%s: %v\nthe page's state: %.3000s", what, err, seen)
	}
	b.t.Logf("%s: done", what)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) shoot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	artifact(b.t, name, png)
}

// login opens the console at base with the test operator's token ("t").
func (b *browser) login(base string) {
	b.t.Helper()
	b.do("log in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "t"),
		chromedp.Click(chromedp.CSS("#login-form button")),
		chromedp.WaitVisible(chromedp.CSS("#app")),
	)
}

// poll waits up to 20 s for a JavaScript expression to be true.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))
}

type arm struct {
	mu    sync.Mutex
	moves int
}

// TestConsoleInABrowser drives the console in a real headless Chromium
// against a real fleet and operator server: log in, see both robots on
// the map, a command in the chat, approve a parked move, press the e-stop,
// read a metric, and check that what a plugin wrote is shown as text.
func TestConsoleInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	robot := &arm{}
	drive, err := tool.New("drive.to", "Drive to a point.", tool.EffectActuator, func(_ context.Context, in struct {
		Lat   float64 `json:"lat"`
		Lon   float64 `json:"lon"`
		Speed float64 `json:"speed"`
	}) (map[string]bool, error) {
		robot.mu.Lock()
		robot.moves++
		robot.mu.Unlock()
		return map[string]bool{"arrived": true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, err := config.Parse(filepath.Join(dir, "fleet.yaml"), []byte(`
agents:
  - name: rover-1
    role: robot
    safety:
      actuators:
        - tool: drive.to
          approve: true
          keep_out: [{name: dock, lat: 52.5200, lon: 13.4050, radius_m: 40}]
  - name: rover-2
    role: robot
`))
	if err != nil {
		t.Fatal(err)
	}
	hub, m := console.NewHub(), metrics.New()
	fleet, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(dir, "data"), Events: hub.Publish, Metrics: m, Tools: map[string][]tool.Tool{"rover-1": {drive}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close(context.Background()) })
	var agents []operator.Agent
	for _, a := range fleet.Agents() {
		agents = append(agents, a)
	}
	r1, _ := fleet.Agent("rover-1")
	r2, _ := fleet.Agent("rover-2")
	for a, pose := range map[*agent.Agent]string{
		r1: `{"lat":52.5190,"lon":13.4040,"heading_deg":45,"speed_mps":0.8,"fix":"rtk_fixed","battery_pct":77}`,
		r2: `{"lat":52.5205,"lon":13.4065,"heading_deg":180,"fix":"rtk_float"}`,
	} {
		if err := a.Report(t.Context(), "gnss", "position", json.RawMessage(pose)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r1.Report(t.Context(), "cam", "label", json.RawMessage(`{"text":"<img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script>crate"}`)); err != nil {
		t.Fatal(err)
	}
	srv, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: agents, Operators: one, Events: hub, Console: true, Metrics: m.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + srv.Addr()

	b := openBrowser(t)
	ctx, do, text, shoot := b.ctx, b.do, b.text, b.shoot
	b.login(base)
	do("the fleet", poll(`document.querySelector("#fleet tbody").textContent.includes("rover-2")`))
	if fleetText := text("#fleet"); !strings.Contains(fleetText, "rover-1") || !strings.Contains(fleetText, "rtk_fixed") {
		t.Errorf("fleet table: %q", fleetText)
	}
	do("the map",
		chromedp.Click(chromedp.CSS(`button[data-view="map"]`)),
		poll(`document.querySelectorAll("#map circle.robot").length === 2`),
	)
	shoot("console-map.png")

	do("the plot of a sensor",
		chromedp.Click(chromedp.CSS(`button[data-view="plots"]`)),
		poll(`Array.from(document.querySelectorAll("#plot-sensor option")).some(o => o.value === "gnss/position")`),
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector("#plot-sensor"); s.value = "gnss/position"; s.dispatchEvent(new Event("change")); })()`),
		poll(`document.querySelector("#plot").dataset.points === "1" && document.querySelector("#plot canvas") !== null`),
	)
	// A new reading appears on the live plot, and a field name a plugin
	// chose is shown as text in the legend.
	if err := r1.Report(t.Context(), "gnss", "position", json.RawMessage(`{"lat":52.5191,"lon":13.4041,"speed_mps":1.7,"fix":"rtk_fixed","<img src=x onerror=window.pwned=1>":3}`)); err != nil {
		t.Fatal(err)
	}
	do("a new reading on the plot",
		poll(`document.querySelector("#plot").dataset.points === "2" && plot.chart.data.some((col, i) => i > 0 && col.includes(1.7))`),
		poll(`document.querySelector("#plot .u-legend").textContent.includes("<img src=x")`),
	)
	// Zoomed into the last minute, the view asks for that span and stops
	// following; back to live, it follows the hour again.
	do("zoom into a span",
		chromedp.Evaluate[chromedp.Void](`zoomPlot(Date.now() / 1000 - 60, Date.now() / 1000)`),
		poll(`!document.querySelector("#plot-live").hidden && plot.range[1] - plot.range[0] <= 62 && document.querySelector("#plot").dataset.points === "2"`),
		chromedp.Click(chromedp.CSS("#plot-live")),
		poll(`document.querySelector("#plot-live").hidden && plot.range[1] - plot.range[0] >= 3599`),
	)
	shoot("console-plot.png")

	// /tasks and /earnings without the mesh or the wallet: the views show
	// the real commands' unavailable message. Then the same render
	// functions are fed a fixture of the documented shapes.
	do("tasks unavailable",
		chromedp.Click(chromedp.CSS(`button[data-view="tasks"]`)),
		poll(`document.querySelector("#tasks-note").textContent.includes("the fleet mesh is off")`),
	)
	do("tasks from a fixture",
		chromedp.Evaluate[chromedp.Void](`renderTasks({"tasks":[
		{"id":"01JTASKA","from":"dispatcher","to":"rover-1","state":"done","goal":"survey the north field","created":"2026-12-01T20:00:00Z","updated":"2026-12-01T20:04:00Z","result":{"area_m2":1200}},
		{"id":"01JTASKB","from":"dispatcher","to":"rover-2","state":"failed","goal":"<img src=x onerror=window.pwned=1>dock","created":"2026-12-01T20:01:00Z","updated":"2026-12-01T20:02:00Z","error":"the path crosses the pond"}]})`),
	)
	if got := text("#tasks"); !strings.Contains(got, "01JTASKA") || !strings.Contains(got, `{"area_m2":1200}`) || !strings.Contains(got, "error: the path crosses the pond") || !strings.Contains(got, "<img src=x") || strings.Contains(text("#tasks-note"), "mesh") {
		t.Errorf("tasks view from the fixture:\n%s", got)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#tasks tbody tr[data-state="failed"]').length`)); err != nil || n != 1 {
		t.Errorf("%d failed task rows (%v)", n, err)
	}
	shoot("console-tasks.png")
	do("earnings unavailable",
		chromedp.Click(chromedp.CSS(`button[data-view="earnings"]`)),
		poll(`document.querySelector("#earnings-note").textContent.includes("has no wallet")`),
	)
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#earnings tbody tr, #earnings tfoot tr").length`)); err != nil || n != 0 {
		t.Errorf("the unavailable earnings view has %d rows (%v)", n, err)
	}
	do("earnings from a fixture", chromedp.Evaluate[chromedp.Void](`renderEarnings({"earnings":[
		{"owner":"did:key:z6MkOwnerA","share":0.6,"amount":"0.60","asset":"USDC"},
		{"owner":"<script>window.pwned=1</script>treasury","share":0.4,"amount":"0.40","asset":"USDC"}],"total":"1.00","asset":"USDC"})`))
	if got := text("#earnings"); !strings.Contains(got, "did:key:z6MkOwnerA") || !strings.Contains(got, "0.60") || !strings.Contains(got, "<script>window.pwned=1</script>treasury") || !strings.Contains(got, "Total") || !strings.Contains(got, "1.00") {
		t.Errorf("earnings view from the fixture:\n%s", got)
	}
	shoot("console-earnings.png")

	do("chat",
		chromedp.Click(chromedp.CSS(`button[data-view="chat"]`)),
		chromedp.SendKeys(chromedp.CSS("#chat-input"), "/status"),
		chromedp.Click(chromedp.CSS("#chat-form button")),
		poll(`document.querySelector("#chat-log").textContent.includes("emergency stop: released")`),
	)

	moved := make(chan error, 1)
	go func() {
		_, err := r1.Ask(context.Background(), agent.Input{Text: `/call drive.to {"lat":52.5185,"lon":13.4035,"speed":0.5}`})
		moved <- err
	}()
	do("a parked move",
		chromedp.Click(chromedp.CSS(`button[data-view="approvals"]`)),
		poll(`document.querySelector("#approvals tbody").textContent.includes("drive.to")`),
	)
	shoot("console-approvals.png")
	// Clicked in the page: the table is redrawn on every refresh, so a
	// node found by one CDP call may be gone by the next.
	do("approve it", chromedp.Evaluate[chromedp.Void](`document.querySelector("#approvals tbody button").click()`))
	select {
	case err := <-moved:
		if err != nil {
			t.Errorf("the approved move: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the approved move never ran")
	}
	robot.mu.Lock()
	if robot.moves != 1 {
		t.Errorf("%d moves after one approval", robot.moves)
	}
	robot.mu.Unlock()

	do("e-stop",
		chromedp.Click(chromedp.CSS("#estop")),
		poll(`document.querySelector("#estop-state").className === "engaged"`),
	)
	shoot("console-estop.png")
	if badge := text("#estop-state"); !fleet.Stopped() || !strings.Contains(badge, "E-STOP ENGAGED") {
		t.Errorf("after the e-stop button: stopped=%v badge=%q", fleet.Stopped(), badge)
	}

	metric, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/metrics").then(r => r.text()).then(t => t.split("\n").find(l => l.startsWith("depai_estop_engaged")))`, chromedp.EvalAwaitPromise))
	if err != nil || strings.TrimSpace(metric) != "depai_estop_engaged 1" {
		t.Errorf("metric line %q (%v)", metric, err)
	}

	do("memory search",
		chromedp.Click(chromedp.CSS(`button[data-view="memory"]`)),
		chromedp.SendKeys(chromedp.CSS("#memory-query"), "crate"),
		chromedp.Click(chromedp.CSS("#memory-form button")),
		poll(`document.querySelector("#memory tbody").textContent.includes("crate")`),
	)
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!window.pwned || document.querySelectorAll("#memory img, #memory script, #plot img, #tasks img, #earnings script").length > 0`))
	if memText := text("#memory"); err != nil || pwned || !strings.Contains(memText, "<script>") {
		t.Errorf("what a plugin wrote was not shown as text: pwned=%v (%v)\n%s", pwned, err, memText)
	}
}
