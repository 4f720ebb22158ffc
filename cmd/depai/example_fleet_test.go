package main

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/operator"
)

// TestExampleFleet runs the README's example fleet as a user would and
// drives its simulated rovers over the operator API: a move runs, a path
// through the pond is refused, and /stop brings a moving rover to rest.
func TestExampleFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugins (WASM and native)")
	}
	data := t.TempDir()
	srv := startRun(t, buildEnv(t), "../../examples/fleet/fleet.yaml", "--data", data, "--addr", "127.0.0.1:0")
	info, _, err := readRunInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	token, err := operator.ReadToken(info.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := operator.NewClient(info.Addr, token)
	send := func(agentName, text string) (agent.Event, error) {
		var last agent.Event
		for ev, err := range c.Send(t.Context(), agentName, text) {
			if err != nil {
				return last, err
			}
			last = ev
		}
		return last, nil
	}
	type pose struct {
		Speed float64 `json:"speed_mps"`
		Mode  string  `json:"mode"`
		Lat   float64 `json:"lat"`
	}
	poseOf := func() pose {
		ev, err := send("rover-1", "/call robot.pose {}")
		if err != nil || ev.Type != agent.EventReply {
			t.Fatalf("robot.pose: %+v %v\n%s", ev, err, srv.stderr.String())
		}
		var p pose
		if err := json.Unmarshal(ev.Data, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitPose := func(what string, cond func(pose) bool) pose {
		deadline := time.Now().Add(20 * time.Second)
		for {
			p := poseOf()
			if cond(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("rover-1 never %s: %+v", what, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	start := poseOf() // waits for the plugins (built from source on a cold cache)
	if start.Lat == 0 || start.Speed != 0 {
		t.Fatalf("start pose %+v", start)
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not %s within 20s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The policy decides moves on the pose it has read from the robot.
	waitFor("a pose in /status", func() bool {
		ev, err := send("rover-1", "/status")
		return err == nil && strings.Contains(ev.Text, "rover-1: 52.5")
	})
	_, err = send("rover-1", `/call drive.to {"lat":52.5209,"lon":13.4050,"speed":1}`)
	var oe *operator.Error
	if !errors.As(err, &oe) || oe.Code != agent.CodeDenied || !strings.Contains(oe.Message, `"pond"`) {
		t.Errorf("a path through the pond: %v", err)
	}
	if ev, err := send("rover-1", `/call drive.to {"lat":52.5203,"lon":13.4032,"speed":1.2}`); err != nil {
		t.Fatalf("a clear move: %+v %v", ev, err)
	}
	waitPose("started moving", func(p pose) bool { return p.Speed > 0.3 })

	// A hot reading near rover-2, written into the shared namespace, wakes
	// the dispatcher's reflex through Watch: the nearest robot drives there
	// through its own policy and reports back as a task result.
	if _, err := send("rover-2", `/call memory.put {"text":"pipe 71 C","namespace":"site","kind":"reading","data":{"temp_c":71,"lat":52.5210,"lon":13.4062}}`); err != nil {
		t.Fatal(err)
	}
	var tasks struct {
		Tasks []agent.TaskInfo `json:"tasks"`
	}
	waitFor("the inspection done", func() bool {
		ev, err := send("dispatcher", "/tasks")
		if err != nil || json.Unmarshal(ev.Data, &tasks) != nil || len(tasks.Tasks) == 0 {
			return false
		}
		return tasks.Tasks[0].State == "done" || tasks.Tasks[0].State == "failed"
	})
	if tk := tasks.Tasks[0]; tk.State != "done" || tk.To != "rover-2" || !strings.Contains(tk.Goal, "drive.to") {
		t.Errorf("inspection task = %+v; want rover-2 sent with drive.to, done", tk)
	}
	began := time.Now()
	if ev, err := send("dispatcher", "/stop"); err != nil || !strings.Contains(ev.Text, "EMERGENCY STOP") {
		t.Fatalf("/stop: %+v %v", ev, err)
	}
	rest := waitPose("came to rest", func(p pose) bool { return p.Speed == 0 })
	t.Logf("at rest %v after /stop (mode %s)", time.Since(began).Round(time.Millisecond), rest.Mode)
	if _, err := send("rover-1", `/call drive.to {"lat":52.5203,"lon":13.4032,"speed":1}`); !errors.As(err, &oe) || oe.Code != agent.CodeDenied {
		t.Errorf("a move during the e-stop: %v", err)
	}
	if code := srv.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d\n%s", code, srv.stderr.String())
	}
	out, _, code := depai(t, "", nil, "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(out, "chain verified") {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
}
