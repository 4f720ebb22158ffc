package link_test

import (
	"context"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/depai/depai/plugins/mqtt/internal/brokertest"
	"github.com/depai/depai/plugins/mqtt/internal/link"
	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
)

var subs = []telemetry.Subscription{
	{Filter: "robots/+/telemetry", QoS: 1, Fields: []telemetry.Field{{Name: "battery", Path: "battery.voltage", Unit: "V"}, {Name: "speed", Path: "speed", Unit: "m/s"}}},
	{Filter: "spBv1.0/#"},
}

// publisher is an independent paho client playing the robots.
func publisher(t *testing.T, broker string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("pub-" + t.Name()))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func pub(t *testing.T, c paho.Client, topic string, retained bool, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

func reading(st *telemetry.State, topic, name string) (telemetry.Reading, bool) {
	for _, r := range st.Latest() {
		if r.Topic == topic && r.Name == name {
			return r, true
		}
	}
	return telemetry.Reading{}, false
}

// TestMosquitto: retained and live messages become readings with units,
// bad payloads are counted and not stored, a Sparkplug device's death (its
// will, published by the broker when the device's connection dies) marks
// it offline, and a broker restart is survived with the subscriptions
// restored.
func TestMosquitto(t *testing.T) {
	for _, v := range []int{4, 5} {
		t.Run(map[int]string{4: "3.1.1", 5: "5"}[v], func(t *testing.T) { testMosquitto(t, v) })
	}
}

func testMosquitto(t *testing.T, version int) {
	port := brokertest.FreePort(t)
	broker, stop := brokertest.Mosquitto(t, port)
	p := publisher(t, broker)
	pub(t, p, "robots/r1/telemetry", true, `{"battery":{"voltage":24.1},"speed":0.5}`)

	st := telemetry.NewState(broker, subs)
	c, err := link.Start(link.Config{Broker: broker, Subs: subs, MaxReconnect: 300 * time.Millisecond, Version: version}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "retained reading", func() bool { _, ok := reading(st, "robots/r1/telemetry", "battery"); return ok })
	if s := st.Status(); s.Retained != 1 || !s.Connected {
		t.Fatalf("status %+v", s)
	}
	pub(t, p, "robots/r2/telemetry", false, `{"battery":{"voltage":23.5},"speed":1.25}`)
	pub(t, p, "robots/r2/telemetry", false, `<html>oops</html>`)
	pub(t, p, "robots/r2/telemetry", false, `{"battery":{"voltage":99}}`)
	eventually(t, "two bad payloads counted", func() bool { return st.Status().Bad == 2 })
	r, ok := reading(st, "robots/r2/telemetry", "speed")
	if b, _ := reading(st, "robots/r2/telemetry", "battery"); !ok || r.Value != 1.25 || r.Unit != "m/s" || b.Value != 23.5 {
		t.Fatalf("r2 readings: %+v %+v (a partial message must not overwrite)", r, b)
	}
	if s := st.Status(); s.BadByKind["not_json"] != 1 || s.BadByKind["missing_field"] != 1 {
		t.Fatalf("bad by kind %v", s.BadByKind)
	}

	pub(t, p, "spBv1.0/plant/NBIRTH/edge1", false, "\x08\x00")
	addr := strings.TrimPrefix(broker, "tcp://")
	dev := brokertest.DyingDevice(t, addr, "edge1", "spBv1.0/plant/NDEATH/edge1", []byte{0x08, 0x00})
	eventually(t, "edge1 online", func() bool { d := st.Devices(); return len(d) == 1 && d[0].Online })
	dev.Close()
	eventually(t, "edge1 offline after its will", func() bool { d := st.Devices(); return len(d) == 1 && !d[0].Online })

	stop()
	eventually(t, "link lost noticed", func() bool { return !st.Status().Connected })
	_, _ = brokertest.Mosquitto(t, port)
	eventually(t, "reconnected", func() bool { return st.Status().Connected })
	p2 := publisher(t, broker)
	pub(t, p2, "robots/r3/telemetry", false, `{"battery":{"voltage":22},"speed":0}`)
	eventually(t, "a reading after the restart (resubscribed)", func() bool { _, ok := reading(st, "robots/r3/telemetry", "battery"); return ok })
	if s := st.Status(); s.Reconnects < 1 {
		t.Fatalf("status %+v", s)
	}

	got := make(chan string, 1)
	p2.Subscribe("robots/r1/cmd", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	if err := c.Publish(context.Background(), "robots/r1/cmd", []byte(`{"go":"dock"}`), 1, false); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != `{"go":"dock"}` {
			t.Fatalf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("published command never arrived")
	}
}

// TestMochi runs the same subscribe/decode path against the embedded
// mochi-mqtt broker.
func TestMochi(t *testing.T) {
	for _, v := range []int{4, 5} {
		t.Run(map[int]string{4: "3.1.1", 5: "5"}[v], func(t *testing.T) { testMochi(t, v) })
	}
}

func testMochi(t *testing.T, version int) {
	broker := brokertest.Mochi(t)
	p := publisher(t, broker)
	// Retained, so they arrive whenever the subscription lands.
	pub(t, p, "robots/m1/telemetry", true, `{"battery":{"voltage":25},"speed":2}`)
	pub(t, p, "robots/m2/telemetry", true, `{"battery":{"voltage":"high"},"speed":2}`)
	st := telemetry.NewState(broker, subs)
	c, err := link.Start(link.Config{Broker: broker, Subs: subs, Version: version}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "reading and one refusal", func() bool {
		_, ok := reading(st, "robots/m1/telemetry", "battery")
		return ok && st.Status().BadByKind["not_number"] >= 1 // retained: again after a reconnect
	})
}
