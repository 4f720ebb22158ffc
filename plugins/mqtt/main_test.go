package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/depai/depai/plugins/mqtt/internal/brokertest"
	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
	"github.com/depai/depai/sdk/plugintest"
	"github.com/depai/depai/sdk/wire"
)

const subsJSON = `[{"filter":"robots/+/telemetry","qos":1,"fields":[{"name":"battery","path":"battery.voltage","unit":"V"},{"name":"speed","path":"speed","unit":"m/s"}]},{"filter":"spBv1.0/#"}]`

func publisher(t *testing.T, broker string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("pub-" + t.Name()))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func pub(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestPluginAgainstMosquitto runs the plugin against Debian's mosquitto:
// telemetry readings with units, refused payloads in mqtt.status, Sparkplug
// births in mqtt.devices, and mqtt.publish reaching a subscriber — only on
// an allowed topic.
func TestPluginAgainstMosquitto(t *testing.T) {
	broker, _ := brokertest.Mosquitto(t, 0)
	p := publisher(t, broker)
	pub(t, p, "robots/r1/telemetry", `{"battery":{"voltage":24.1},"speed":0.5}`)
	pub(t, p, "robots/r2/telemetry", `not json`)
	pub(t, p, "spBv1.0/plant/NBIRTH/edge1", "\x08\x00")
	pt := plugintest.New(t, plugintest.Config(map[string]string{"broker": broker, "subscriptions": subsJSON, "publish_topics": "robots/+/cmd"}))

	var tel Telemetry
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && len(tel.Readings) < 2; time.Sleep(20 * time.Millisecond) {
		b, err := pt.Poll("mqtt.telemetry")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &tel); err != nil {
			t.Fatal(err)
		}
	}
	want := []telemetry.Reading{{Topic: "robots/r1/telemetry", Name: "battery", Value: 24.1, Unit: "V"}, {Topic: "robots/r1/telemetry", Name: "speed", Value: 0.5, Unit: "m/s"}}
	if len(tel.Readings) != 2 {
		t.Fatalf("readings %+v", tel.Readings)
	}
	for i, r := range tel.Readings {
		if r.Topic != want[i].Topic || r.Name != want[i].Name || r.Value != want[i].Value || r.Unit != want[i].Unit || r.Time.IsZero() {
			t.Errorf("reading %d = %+v; want %+v", i, r, want[i])
		}
	}
	var st telemetry.Status
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && st.Bad == 0; time.Sleep(20 * time.Millisecond) {
		st, _ = plugintest.CallAs[telemetry.Status](pt, "mqtt.status", StatusIn{})
	}
	if !st.Connected || st.BadByKind["not_json"] < 1 || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
	devs, err := plugintest.CallAs[DevicesOut](pt, "mqtt.devices", DevicesIn{})
	if err != nil || len(devs.Devices) != 1 || devs.Devices[0].ID != "plant/edge1" || !devs.Devices[0].Online {
		t.Fatalf("devices %+v, %v", devs, err)
	}

	got := make(chan string, 1)
	p.Subscribe("robots/r1/cmd", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	out, err := plugintest.CallAs[PublishOut](pt, "mqtt.publish", PublishIn{Topic: "robots/r1/cmd", Payload: json.RawMessage(`{"go":"dock"}`)})
	if err != nil || out.Bytes != 13 {
		t.Fatalf("publish: %+v, %v", out, err)
	}
	select {
	case m := <-got:
		if m != `{"go":"dock"}` {
			t.Fatalf("subscriber got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the command never reached the subscriber")
	}
	_, err = pt.Call("mqtt.publish", PublishIn{Topic: "factory/door/open", Payload: json.RawMessage(`{}`)})
	if we, ok := errors.AsType[*wire.Error](err); !ok || we.Code != wire.CodeDenied {
		t.Fatalf("publish outside publish_topics: %v; want denied", err)
	}
	for _, tool := range pt.Manifest().Tools {
		if tool.Name == "mqtt.publish" && tool.Effect != "actuator" {
			t.Fatalf("mqtt.publish effect %q; want actuator", tool.Effect)
		}
	}
}

// TestPluginNeedsActuatorGrant: without the actuator grant the plugin does
// not load, so its publish tool cannot exist ungated.
func TestPluginNeedsActuatorGrant(t *testing.T) {
	_, err := plugintest.Load(t, plugintest.Grants(wire.Capabilities{Config: configKeys, Secrets: []string{secretPassword}}))
	if err == nil || !strings.Contains(err.Error(), "actuator") {
		t.Fatalf("load without the actuator grant: %v; want a refusal naming it", err)
	}
}

// TestPluginAgainstMochi: the embedded broker over MQTT 5, and a bad config
// refused.
func TestPluginAgainstMochi(t *testing.T) {
	broker := brokertest.Mochi(t)
	p := publisher(t, broker)
	pub(t, p, "robots/m1/telemetry", `{"battery":{"voltage":25},"speed":2}`)
	pt := plugintest.New(t, plugintest.Config(map[string]string{"broker": broker, "subscriptions": subsJSON, "version": "5", "publish_topics": "robots/+/cmd"}))
	var tel Telemetry
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && len(tel.Readings) < 2; time.Sleep(20 * time.Millisecond) {
		var err error
		if tel, err = plugintest.CallAs[Telemetry](pt, "mqtt.readings", ReadingsIn{Topic: "robots/#"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(tel.Readings) != 2 || tel.Readings[0].Value != 25 {
		t.Fatalf("readings %+v", tel.Readings)
	}
	got := make(chan string, 1)
	p.Subscribe("robots/m1/cmd", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	if _, err := pt.Call("mqtt.publish", PublishIn{Topic: "robots/m1/cmd", Payload: json.RawMessage(`{"stop":true}`), QoS: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != `{"stop":true}` {
			t.Fatalf("subscriber got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the MQTT 5 publish never arrived")
	}
	unload(t, pt)
	for _, cfg := range []map[string]string{
		{"broker": broker, "subscriptions": `[{"filter":"a/#/b"}]`},
		{"broker": broker, "subscriptions": subsJSON, "version": "3"},
		{"broker": "udp://x:1", "subscriptions": subsJSON},
	} {
		bad := plugintest.New(t, plugintest.Config(cfg))
		if _, err := bad.Call("mqtt.status", StatusIn{}); !isCode(err, wire.CodeInvalidArgument) {
			t.Errorf("config %v: %v; want invalid_argument", cfg, err)
		}
		unload(t, bad)
	}
}

// unload ends pt's run hook: the plugin's globals are shared by every load
// in this test binary, so loads that should not overlap are unloaded.
func unload(t *testing.T, pt *plugintest.Plugin) {
	t.Helper()
	if err := pt.Unload(); err != nil {
		t.Fatal(err)
	}
}

func isCode(err error, code string) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == code
}
