package operator_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/metrics"
	"github.com/depai/depai/agent/operator"
	"github.com/depai/depai/agent/operator/console"
	"github.com/depai/depai/agent/transports"
)

// TestConsoleStopsASimbot runs the README's example fleet — rover-1 and
// rover-2 are the simbot process plugin, real simulated robots with their
// own physics — behind the console in a real headless Chromium: the
// operator drives rover-1 from the console's chat, sees it move on the
// fleet view, the map and the speed plot, presses the e-stop, and sees its
// speed reach 0 and its state change to idle under an engaged e-stop.
func TestConsoleStopsASimbot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugins and starts a browser")
	}
	file, err := config.Load("../../examples/fleet/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The fleet's log, shown when the test fails.
	var logs lockedWriter
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fleet log:\n%s", logs.String())
		}
	})
	hub, m := console.NewHub(), metrics.New()
	fleet, err := agent.Open(t.Context(), file, agent.Options{DataDir: filepath.Join(t.TempDir(), "data"), Events: hub.Publish, Metrics: m, NewTransports: transports.Default,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close(context.Background()) })
	wctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a cold cache builds hello (WASM) and simbot
	defer cancel()
	if err := fleet.WaitPlugins(wctx); err != nil {
		t.Fatal(err)
	}
	var agents []operator.Agent
	for _, a := range fleet.Agents() {
		agents = append(agents, a)
	}
	srv, err := operator.NewServer(operator.Config{Addr: "127.0.0.1:0", Agents: agents, Operators: one, Events: hub, Console: true, Metrics: m.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	b := openBrowser(t)
	b.login("http://" + srv.Addr())
	// The console's own view of rover-1's robot, from GET /v1/agents.
	const robot = `((state.agents.find(a => a.name === "rover-1") || {}).robot || {})`
	b.do("the rovers and the station on the map",
		chromedp.Click(chromedp.CSS(`button[data-view="map"]`)),
		poll(`document.querySelectorAll("#map circle.robot").length === 3`), // two rovers and base-1, the station
		poll(robot+`.mode === "idle" && `+robot+`.speed_mps === undefined`),
	)
	b.do("drive rover-1 from the chat",
		chromedp.Click(chromedp.CSS(`button[data-view="chat"]`)),
		chromedp.SendKeys(chromedp.CSS("#chat-input"), `/call drive.to {"lat":52.5203,"lon":13.4032,"speed":1.2}`),
		chromedp.Click(chromedp.CSS("#chat-form button")),
		poll(`document.querySelector("#chat-log").textContent.includes("distance_m")`),
	)
	b.do("it moves",
		chromedp.Click(chromedp.CSS(`button[data-view="fleet"]`)),
		poll(robot+`.speed_mps > 0.3 && `+robot+`.mode === "driving"`),
		poll(`document.querySelector("#fleet tbody").textContent.includes("driving")`),
	)
	b.do("its speed on the plot",
		chromedp.Click(chromedp.CSS(`button[data-view="plots"]`)),
		poll(`Array.from(document.querySelectorAll("#plot-sensor option")).some(o => o.value === "simbot/pose")`),
		chromedp.Evaluate[chromedp.Void](`(() => { const r = document.querySelector("#plot-range"); r.value = "15m"; const s = document.querySelector("#plot-sensor"); s.value = "simbot/pose"; s.dispatchEvent(new Event("change")); })()`),
		poll(`plot.chart && plot.chart.series.some((s, i) => s.label === "speed_mps" && plot.chart.data[i].some(v => v > 0.3))`),
	)

	began := time.Now()
	b.do("press the e-stop",
		chromedp.Click(chromedp.CSS("#estop")),
		poll(`document.querySelector("#estop-state").className === "engaged"`),
	)
	b.do("rover-1 comes to rest",
		chromedp.Click(chromedp.CSS(`button[data-view="map"]`)),
		poll(`(`+robot+`.speed_mps || 0) === 0 && `+robot+`.mode === "idle"`),
		poll(`document.querySelector('#map text.robot-label[data-agent="rover-1"]').textContent.endsWith("0.0 m/s \u00b7 idle") && document.querySelector("#map-estop") !== null`),
	)
	t.Logf("the console saw rover-1 at rest %v after the e-stop click", time.Since(began).Round(time.Millisecond))
	if !fleet.Stopped() {
		t.Error("the fleet is not stopped after the console's e-stop")
	}
	b.shoot("console-simbot-stopped.png")
	row, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("#fleet tbody tr").textContent`))
	if err != nil || !strings.Contains(row, "0.0 m/s") || !strings.Contains(row, "idle") || !strings.Contains(row, "stopped") {
		t.Errorf("rover-1 in the fleet view after the e-stop: %q (%v)", row, err)
	}
	b.do("the plot shows it stopping",
		chromedp.Click(chromedp.CSS(`button[data-view="plots"]`)),
		poll(`(() => { const i = plot.chart.series.findIndex(s => s.label === "speed_mps"); const v = plot.chart.data[i].filter(x => x !== null); return v.some(x => x > 0.3) && v[v.length - 1] === 0; })()`),
	)
	// Zoomed into the last half minute with only the speed shown: the
	// drive and the stop at full detail.
	b.do("zoom into the stop",
		chromedp.Evaluate[chromedp.Void](`zoomPlot(Date.now() / 1000 - 30, Date.now() / 1000)`),
		poll(`!document.querySelector("#plot-live").hidden && plot.range[1] - plot.range[0] <= 32`),
		chromedp.Evaluate[chromedp.Void](`plot.chart.series.forEach((s, i) => { if (i > 0) plot.chart.setSeries(i, { show: s.label === "speed_mps" }); })`),
	)
	b.shoot("console-simbot-plot.png")

	// While the e-stop holds, a move from the console is refused.
	b.do("a move during the e-stop",
		chromedp.Click(chromedp.CSS(`button[data-view="chat"]`)),
		chromedp.SendKeys(chromedp.CSS("#chat-input"), `/call drive.to {"lat":52.5203,"lon":13.4032,"speed":1}`),
		chromedp.Click(chromedp.CSS("#chat-form button")),
		poll(`document.querySelector("#chat-log").textContent.includes("error [estop]") || document.querySelector("#chat-log").textContent.includes("error [denied]")`),
	)
}
