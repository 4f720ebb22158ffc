package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/mesh"
	"github.com/depai/depai/memory"
)

// reflexTimeout is how long a robot has for an inspection.
const reflexTimeout = 5 * time.Minute

// reflex is a wake with inspect: deterministic code, no model. A record
// whose data field is above the threshold, and that says where it was
// taken (lat, lon), becomes a depai.call task for the nearest agent of the
// role that is not already busy with one of this agent's tasks: it calls
// the configured tool (such as drive.to) with that position, through its
// own policy. What was decided is stored in this agent's namespace.
func (a *Agent) reflex(ctx context.Context, w config.Wake, r memory.Record) {
	var data map[string]any
	if json.Unmarshal(r.Data, &data) != nil {
		return
	}
	if w.Above != nil {
		v, ok := data[w.Above.Field].(float64)
		if !ok || v <= w.Above.Value {
			return
		}
	}
	lat, okLat := data["lat"].(float64)
	lon, okLon := data["lon"].(float64)
	if !okLat || !okLon {
		a.log.Warn("reflex: the record says not where it was taken (data.lat, data.lon); nobody sent", "record", r.ID)
		return
	}
	to, dist, err := a.nearest(ctx, w.Inspect.Role, lat, lon)
	if err != nil {
		a.log.Warn("reflex: nobody to send", "record", r.ID, "err", err)
		return
	}
	args := map[string]float64{"lat": lat, "lon": lon}
	if w.Inspect.Speed > 0 {
		args["speed"] = w.Inspect.Speed
	}
	raw, _ := json.Marshal(args)
	t, err := a.delegate(ctx, to, taskCall, callInput{Tool: w.Inspect.Tool, Args: raw, Depth: depthOf(r) + 1}, reflexTimeout)
	if err != nil {
		a.log.Warn("reflex: task not offered", "to", to, "record", r.ID, "err", err)
		return
	}
	text := fmt.Sprintf("%s from %s at %.6f,%.6f: sent %s (%s) to inspect, task %s", r.Text, r.Author, lat, lon, to, distText(dist), t.ID)
	a.log.Info("reflex: inspection delegated", "to", to, "task", t.ID, "record", r.ID)
	if _, err := a.mem.Put(ctx, memory.Record{Namespace: a.ns + "/tasks", Kind: memory.KindObservation, Author: a.cfg.Name, Text: text,
		Tags: []string{"cause:" + r.ID, "task:" + t.ID, depthTag + strconv.Itoa(depthOf(r)+1)}}); err != nil {
		a.log.Warn("reflex: decision not stored", "err", err)
	}
}

func distText(m float64) string {
	if math.IsInf(m, 1) {
		return "position unknown"
	}
	return fmt.Sprintf("%.0f m away", m)
}

// nearest is the agent of role nearest to lat, lon that has no open
// inspection from this agent; agents without a pose come last (distance +Inf).
func (a *Agent) nearest(ctx context.Context, role string, lat, lon float64) (string, float64, error) {
	if a.fleet.mesh == nil {
		return "", 0, errMeshOff
	}
	ss, err := a.fleetAgents(ctx)
	if err != nil {
		return "", 0, err
	}
	busy := map[string]bool{}
	for _, t := range a.fleet.mesh.node.Tasks(mesh.TaskFilter{Agent: a.cfg.Name}) {
		if !t.State.Terminal() && t.From == a.cfg.Name && t.Kind == taskCall {
			busy[t.To] = true
		}
	}
	best, bestD := "", math.Inf(1)
	for _, s := range ss {
		if s.Name == a.cfg.Name || s.Role != role || busy[s.Name] || s.State == string(mesh.StatusOffline) || s.State == "stopped" {
			continue
		}
		d := math.Inf(1)
		if s.Robot != nil && !s.Robot.Time.IsZero() {
			d = haversineM(lat, lon, s.Robot.Lat, s.Robot.Lon)
		}
		if best == "" || d < bestD {
			best, bestD = s.Name, d
		}
	}
	if best == "" {
		return "", 0, fmt.Errorf("no %s agent is free (each has an open task from %s, or none is online)", role, a.cfg.Name)
	}
	return best, bestD, nil
}

// haversineM is the great-circle distance in metres.
func haversineM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371000.0
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := (lat2-lat1)*math.Pi/180, (lon2-lon1)*math.Pi/180
	h := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
