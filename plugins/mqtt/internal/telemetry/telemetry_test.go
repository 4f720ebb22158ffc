package telemetry

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/depai/depai/plugins/internal/jsonmap"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"robots/+/telemetry", "robots/r1/telemetry", true},
		{"robots/+/telemetry", "robots/r1/x/telemetry", false},
		{"robots/#", "robots", true},
		{"robots/#", "robots/r1/telemetry", true},
		{"#", "$SYS/broker/uptime", false},
		{"+/x", "$SYS/x", false},
		{"a/b", "a/b/c", false},
		{"a/+", "a/", true},
	}
	for _, c := range cases {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
	for _, bad := range []string{"", "a/#/b", "a/b+", "#x"} {
		if ValidFilter(bad) == nil {
			t.Errorf("filter %q accepted", bad)
		}
	}
}

func TestDecode(t *testing.T) {
	fields := []Field{{Name: "battery", Path: "battery.voltage", Unit: "V"}, {Name: "temp", Path: "temp", Unit: "°C", Optional: true}, {Name: "moving", Path: "moving"}}
	now := time.Now()
	rs, err := Decode("r/1", []byte(`{"battery":{"voltage":24.5},"temp":31,"moving":true}`), fields, now)
	if err != nil || len(rs) != 3 || rs[0].Value != 24.5 || rs[0].Unit != "V" || rs[2].Value != 1 {
		t.Fatalf("readings %+v, %v", rs, err)
	}
	if rs, err := Decode("r/1", []byte(`{"battery":{"voltage":24.5},"moving":false}`), fields, now); err != nil || len(rs) != 2 {
		t.Fatalf("optional missing: %+v, %v", rs, err)
	}
	for payload, kind := range map[string]jsonmap.Kind{
		`not json`:                                     jsonmap.KindNotJSON,
		`{"battery":{"voltage":24.5}} trailing`:        jsonmap.KindNotJSON,
		`{"moving":true}`:                              jsonmap.KindMissingField,
		`{"battery":{"voltage":"24.5"},"moving":true}`: jsonmap.KindNotNumber,
		`{"battery":{"voltage":null},"moving":true}`:   jsonmap.KindNotNumber,
		`{"battery":7,"moving":true}`:                  jsonmap.KindMissingField,
		`{"battery":{"voltage":1e999},"moving":true}`:  jsonmap.KindNotNumber,
	} {
		rs, err := Decode("r/1", []byte(payload), fields, now)
		if jsonmap.KindOf(err) != kind || rs != nil || !strings.Contains(err.Error(), "mqtt r/1") {
			t.Errorf("Decode(%s) = %v, %v; want %s and no readings", payload, rs, err, kind)
		}
	}
	if rs, err := Decode("r/1", []byte(`12.5`), []Field{{Name: "t", Unit: "°C"}}, now); err != nil || rs[0].Value != 12.5 {
		t.Fatalf("bare number: %v %v", rs, err)
	}
}

func TestSparkplugBirthDeath(t *testing.T) {
	s := NewState("b", []Subscription{{Filter: "spBv1.0/#"}})
	now := time.Now()
	for _, topic := range []string{"spBv1.0/plant/NBIRTH/edge1", "spBv1.0/plant/DBIRTH/edge1/robot1", "spBv1.0/plant/DBIRTH/edge1/robot2", "spBv1.0/plant/DDEATH/edge1/robot2"} {
		s.Message(topic, []byte{0x08, 0x01}, false, now)
	}
	got := func() string {
		var b strings.Builder
		for _, d := range s.Devices() {
			b.WriteString(d.ID)
			if d.Online {
				b.WriteString("+ ")
			} else {
				b.WriteString("- ")
			}
		}
		return b.String()
	}
	if g := got(); g != "plant/edge1+ plant/edge1/robot1+ plant/edge1/robot2- " {
		t.Fatalf("devices %q", g)
	}
	s.Message("spBv1.0/plant/NDEATH/edge1", nil, false, now)
	if g := got(); g != "plant/edge1- plant/edge1/robot1- plant/edge1/robot2- " {
		t.Fatalf("after NDEATH %q", g)
	}
	s.Message("spBv1.0/plant/NBIRTH/edge1", nil, false, now)
	s.LinkLost(errors.New("broker gone"), now)
	if g := got(); g != "plant/edge1- plant/edge1/robot1- plant/edge1/robot2- " {
		t.Fatalf("after losing the broker %q; want all offline", g)
	}
	for _, bad := range []string{"spBv1.0/plant/DBIRTH/edge1", "spBv1.0/plant/NBIRTH/edge1/d", "spBv1.0/plant/STATE/x", "spAv1.0/g/NBIRTH/n", "spBv1.0//NBIRTH/n"} {
		if _, ok := ParseSparkplug(bad); ok {
			t.Errorf("%q parsed as Sparkplug", bad)
		}
	}
}

func TestParseSubscriptions(t *testing.T) {
	subs, err := ParseSubscriptions(`[{"filter":"robots/+/telemetry","qos":1,"fields":[{"name":"battery","path":"battery.voltage","unit":"V"}]}]`)
	if err != nil || len(subs) != 1 || subs[0].QoS != 1 || subs[0].Fields[0].Unit != "V" {
		t.Fatalf("%+v, %v", subs, err)
	}
	for _, bad := range []string{`{}`, `[]`, `[{"filter":"a/#/b"}]`, `[{"filter":"a","qos":3}]`, `[{"filter":"a","fields":[{"path":"x"}]}]`, `[{"filter":"a","fields":[{"name":"x"},{"name":"x"}]}]`, `[{"filter":"a","unknown":1}]`} {
		if _, err := ParseSubscriptions(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// FuzzSparkplugTopic: no topic panics; a parsed one round-trips.
func FuzzSparkplugTopic(f *testing.F) {
	f.Add("spBv1.0/plant/DBIRTH/edge1/robot1")
	f.Add("spBv1.0/plant/NDEATH/edge1")
	f.Fuzz(func(t *testing.T, topic string) {
		sp, ok := ParseSparkplug(topic)
		if !ok {
			return
		}
		rebuilt := "spBv1.0/" + sp.Group + "/" + sp.Type + "/" + sp.Node
		if sp.Device != "" {
			rebuilt += "/" + sp.Device
		}
		if rebuilt != topic {
			t.Fatalf("%q parsed to %+v", topic, sp)
		}
	})
}

// metric and payload encode Sparkplug B protobuf for the tests below (the
// decoder itself is checked against the reference encoder in
// internal/sparkplug).
func metric(name string, alias uint64, typ uint32, double float64) []byte {
	var b []byte
	if name != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, name)
	}
	if alias != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, alias)
	}
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(typ))
	if typ == 8 { // UInt64, as bdSeq
		b = protowire.AppendTag(b, 11, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(double))
	}
	b = protowire.AppendTag(b, 13, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(double))
}

func payload(metrics ...[]byte) []byte {
	var b []byte
	for _, m := range metrics {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// TestSparkplugPayloads: births declare metrics and aliases, data by alias
// becomes readings under the data topic, an undeclared alias and a payload
// that is not protobuf are counted, a late NDEATH of an older session
// (another bdSeq) is ignored and the node's own takes it and its devices
// offline.
func TestSparkplugPayloads(t *testing.T) {
	s := NewState("b", []Subscription{{Filter: "spBv1.0/#"}})
	now := time.Now()
	s.Message("spBv1.0/plant/NBIRTH/edge1", payload(metric("bdSeq", 0, 8, 4)), false, now)
	s.Message("spBv1.0/plant/DBIRTH/edge1/robot1", payload(metric("battery/voltage", 1, 10, 24.5), metric("speed", 2, 10, 0)), false, now)
	s.Message("spBv1.0/plant/DDATA/edge1/robot1", payload(metric("", 1, 10, 23.9), metric("", 9, 10, 1)), false, now)
	s.Message("spBv1.0/plant/DDATA/edge1/robot1", []byte("{\"not\":\"protobuf\"}"), false, now)
	got := map[string]float64{}
	for _, r := range s.Latest() {
		if r.Topic != "spBv1.0/plant/DDATA/edge1/robot1" {
			t.Errorf("reading under topic %q", r.Topic)
		}
		got[r.Name] = r.Value
	}
	if len(got) != 2 || got["battery/voltage"] != 23.9 || got["speed"] != 0 {
		t.Fatalf("readings %v", got)
	}
	st := s.Status()
	if st.BadByKind["unknown_alias"] != 1 || st.BadByKind["not_protobuf"] != 1 || st.Readings != 3 {
		t.Fatalf("status %+v", st)
	}
	online := func() map[string]bool {
		m := map[string]bool{}
		for _, d := range s.Devices() {
			m[d.ID] = d.Online
		}
		return m
	}
	s.Message("spBv1.0/plant/NDEATH/edge1", payload(metric("bdSeq", 0, 8, 3)), false, now)
	if o := online(); !o["plant/edge1"] || !o["plant/edge1/robot1"] || s.Status().BadByKind["stale_death"] != 1 {
		t.Fatalf("after a stale NDEATH: %v, %+v", o, s.Status())
	}
	s.Message("spBv1.0/plant/NDEATH/edge1", payload(metric("bdSeq", 0, 8, 4)), false, now)
	if o := online(); o["plant/edge1"] || o["plant/edge1/robot1"] {
		t.Fatalf("after the node's NDEATH: %v", o)
	}
	for _, d := range s.Devices() {
		if d.ID == "plant/edge1" && (d.BdSeq == nil || *d.BdSeq != 4 || d.Metrics != 1) {
			t.Fatalf("node %+v", d)
		}
	}
}
