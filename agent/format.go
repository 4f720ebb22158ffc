package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/tool"
	"github.com/depai/depai/memory"
)

// The terminal renderings of command results (Event.Text). Programs read
// Event.Data instead.

// formatStatus is the status table; the agent answering is marked with "*".
func formatStatus(ss []Status, current string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  AGENT\tROLE\tSTATE\tMODEL\tTOOLS\tTURNS\tQUEUED\tUP\tMEMORY")
	for _, s := range ss {
		mark := " "
		if s.Name == current {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", mark, s.Name, s.Role, s.State, s.Model, s.Tools, s.Turns, s.Queued,
			time.Since(s.Started).Round(time.Second), s.Memory)
	}
	w.Flush()
	for _, s := range ss {
		if r := s.Robot; r != nil {
			state := fmt.Sprintf("%.6f,%.6f heading %.0f° %.1f m/s fix %s", r.Lat, r.Lon, r.HeadingDeg, r.SpeedMPS, fixOrUnknown(r.Fix))
			if r.BatteryPct != nil {
				state += fmt.Sprintf(" battery %.0f%%", *r.BatteryPct)
			}
			if r.Stale {
				state += fmt.Sprintf(" STALE (%s old)", time.Duration(r.AgeMillis)*time.Millisecond)
			}
			if r.Time.IsZero() {
				state = "no pose yet"
			}
			if r.Teleop != "" {
				state += " [teleop: " + r.Teleop + "]"
			}
			fmt.Fprintf(&b, "  %s: %s\n", s.Name, state)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func fixOrUnknown(f policy.Fix) string {
	if f == "" {
		return "unknown"
	}
	return string(f)
}

func formatStatusReport(r StatusReport, current string) string {
	var b strings.Builder
	b.WriteString(formatStatus(r.Agents, current))
	estop := "released"
	if r.EStop.Engaged {
		estop = fmt.Sprintf("ENGAGED by %s at %s (%s); an admin's /resume releases it", r.EStop.By, r.EStop.At.Format(time.DateTime), r.EStop.Reason)
	}
	fmt.Fprintf(&b, "\nemergency stop: %s", estop)
	if r.Approvals > 0 {
		fmt.Fprintf(&b, "\napprovals waiting: %d (/approvals)", r.Approvals)
	}
	fmt.Fprintf(&b, "\nmemory: %d records indexed (%d with vectors, %d waiting to be embedded); recall: %s",
		r.Recall.Docs, r.Recall.Vectors, r.Recall.PendingEmbeds, r.Recall.Mode)
	if r.Recall.LastError != "" {
		fmt.Fprintf(&b, "\nrecall's last error: %s", r.Recall.LastError)
	}
	for _, p := range r.Plugins {
		switch p.State {
		case "loading":
			fmt.Fprintf(&b, "\nplugin %s: still loading (built from source on first start)", p.Name)
		case "failed":
			fmt.Fprintf(&b, "\nplugin %s: NOT LOADED: %s", p.Name, p.Error)
		}
	}
	fmt.Fprintf(&b, "\naudit: %d entries", r.Audit.Entries)
	return b.String()
}

func formatTools(specs []tool.Spec) string {
	if len(specs) == 0 {
		return "no tools"
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "TOOL\tSOURCE\tEFFECT\tDESCRIPTION\n")
	for _, s := range specs {
		effect := string(s.Effect)
		if effect == "" {
			effect = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, s.Source, effect, s.Description)
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func formatRecords(recs []memory.Record) string {
	if len(recs) == 0 {
		return "no records"
	}
	var b strings.Builder
	for _, r := range recs {
		text := strings.ReplaceAll(r.Text, "\n", " ⏎ ")
		if len(text) > 160 {
			text = text[:157] + "..."
		}
		fmt.Fprintf(&b, "%s  %s  %-11s %-18s %s\n", r.ID, r.Time.UTC().Format(time.DateTime), r.Kind, r.Namespace, text)
	}
	return strings.TrimRight(b.String(), "\n")
}

// formatFacts lists a fact's versions with the time each was valid.
func formatFacts(recs []memory.Record) string {
	if len(recs) == 0 {
		return "no versions"
	}
	var b strings.Builder
	for _, r := range recs {
		until := "now"
		if !r.ValidTo.IsZero() {
			until = r.ValidTo.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(&b, "%s  valid %s → %s  %s\n", r.ID, r.Time.UTC().Format(time.DateTime), until, strings.ReplaceAll(r.Text, "\n", " "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func formatPlugins(ps []PluginInfo) string {
	if len(ps) == 0 {
		return "no plugins"
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PLUGIN\tSTATE\tTRANSPORT\tVERSION\tFILE\tTOOLS\tSENSORS")
	var failed []string
	for _, p := range ps {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", p.Name, p.State, p.Transport, p.Version, p.File, strings.Join(p.Tools, ","), p.Sensors)
		if p.Error != "" {
			failed = append(failed, fmt.Sprintf("NOT LOADED %s: %s", p.Name, p.Error))
		}
		if len(p.Unconfined) > 0 {
			failed = append(failed, fmt.Sprintf("NOT ENFORCED for %s on this kernel (allowed by unconfined_ok): %s", p.Name, strings.Join(p.Unconfined, ", ")))
		}
	}
	w.Flush()
	out := strings.TrimRight(b.String(), "\n")
	if len(failed) > 0 {
		out += "\n" + strings.Join(failed, "\n")
	}
	return out
}

func formatApprovals(ps []policy.Approval) string {
	if len(ps) == 0 {
		return "no actions are waiting for approval"
	}
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s  %s %s by %s on %s: %s (expires %s) args %s\n", p.ID, p.Action.Kind, p.Action.Name, p.Action.Principal, p.Action.Agent,
			p.Reason, p.Expires.Format(time.TimeOnly), string(p.Action.Args))
	}
	b.WriteString("/approve ID or /deny ID [REASON]")
	return b.String()
}

func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
