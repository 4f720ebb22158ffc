package main

import (
	"crypto/tls"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/depai/depai/plugins/mqtt/internal/brokertest"
	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
	"github.com/depai/depai/sdk/plugintest"
)

// Sparkplug B payloads as the reference encoder, npm sparkplug-payload
// 1.0.3, writes them (internal/sparkplug/testdata/encode.js; the decoder is
// checked against it live in internal/sparkplug): an edge node's NBIRTH
// with bdSeq 7, a device's DBIRTH declaring battery/voltage (alias 1) and
// speed (alias 2), a DDATA updating battery/voltage by alias to 23.75, and
// the node's NDEATH with bdSeq 7.
const (
	spNBirth = "0880e4a2cead33120b0a05626453657120085807121e0a0f626174746572792f766f6c746167651002200a690000000000803840120d0a0474656d702009650000aa41120f0a05636f756e74200350fbffffff0f12080a026f6b200b7001120d0a056c6162656c200c7a0268691803"
	spDBirth = "0880e4a2cead33121e0a0f626174746572792f766f6c746167651001200a69000000000080384012100a05737065656410022009650000003f1801"
	spDData  = "08e8eba2cead33120d1001200a690000000000c037401802"
	spNDeath = "08d0f3a2cead33120b0a056264536571200858071800"
)

func tlsPublisher(t *testing.T, broker string, ca *brokertest.CA) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("pub-" + t.Name()).
		SetTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect over TLS: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func pubHex(t *testing.T, c paho.Client, topic, h string, retained bool) {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Publish(topic, 1, retained, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestTLSAndSparkplug runs the plugin against mosquitto's TLS listener
// (its certificate from a CA made by the test; 127.0.0.1) over MQTT 3.1.1
// and 5: Sparkplug B births, data by alias and the node's death arrive as
// readings and online/offline devices. A broker whose certificate the
// configured CA did not sign is refused, and mqtt.status says why.
func TestTLSAndSparkplug(t *testing.T) {
	ca := brokertest.NewCA(t)
	broker := brokertest.MosquittoTLS(t, ca)
	p := tlsPublisher(t, broker, ca)
	pubHex(t, p, "spBv1.0/plant/NBIRTH/edge1", spNBirth, true)
	pubHex(t, p, "spBv1.0/plant/DBIRTH/edge1/robot1", spDBirth, true)
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			pt := plugintest.New(t, plugintest.Config(map[string]string{"broker": broker, "tls_ca": ca.PEMFile, "version": version,
				"subscriptions": `[{"filter":"spBv1.0/plant/#"}]`}))
			defer unload(t, pt)
			devices := func() map[string]bool {
				out, err := plugintest.CallAs[DevicesOut](pt, "mqtt.devices", DevicesIn{})
				if err != nil {
					t.Fatal(err)
				}
				m := map[string]bool{}
				for _, d := range out.Devices {
					m[d.ID] = d.Online
				}
				return m
			}
			waitFor(t, "both births", func() bool { d := devices(); return d["plant/edge1"] && d["plant/edge1/robot1"] })
			pubHex(t, p, "spBv1.0/plant/DDATA/edge1/robot1", spDData, false)
			var rs []telemetry.Reading
			waitFor(t, "the DDATA by alias", func() bool {
				tel, err := plugintest.CallAs[Telemetry](pt, "mqtt.readings", ReadingsIn{Topic: "spBv1.0/plant/DDATA/edge1/robot1"})
				if err != nil {
					t.Fatal(err)
				}
				rs = tel.Readings
				return len(rs) == 2 && rs[0].Name == "battery/voltage" && rs[0].Value == 23.75
			})
			if rs[1].Name != "speed" || rs[1].Value != 0.5 {
				t.Fatalf("readings %+v", rs)
			}
			pubHex(t, p, "spBv1.0/plant/NDEATH/edge1", spNDeath, false)
			waitFor(t, "the NDEATH", func() bool { d := devices(); return !d["plant/edge1"] && !d["plant/edge1/robot1"] })
			pubHex(t, p, "spBv1.0/plant/NBIRTH/edge1", spNBirth, true) // back for the next version
		})
	}

	// A connect that failed used to leave no trace in mqtt.status.
	other := brokertest.NewCA(t)
	for _, version := range []string{"3.1.1", "5"} {
		pt := plugintest.New(t, plugintest.Config(map[string]string{"broker": broker, "tls_ca": other.PEMFile, "version": version, "subscriptions": `[{"filter":"x/#"}]`}))
		var st telemetry.Status
		waitFor(t, "refusal over "+version, func() bool {
			st, _ = plugintest.CallAs[telemetry.Status](pt, "mqtt.status", StatusIn{})
			return st.LastError != ""
		})
		if st.Connected || !strings.Contains(st.LastError, "certificate") {
			t.Fatalf("MQTT %s, a broker the CA did not sign: %+v", version, st)
		}
		unload(t, pt)
	}
	bad := plugintest.New(t, plugintest.Config(map[string]string{"broker": "tcp://127.0.0.1:1", "tls_ca": ca.PEMFile, "subscriptions": `[{"filter":"x/#"}]`}))
	if _, err := bad.Call("mqtt.status", StatusIn{}); err == nil || !strings.Contains(err.Error(), "tls_ca") {
		t.Fatalf("tls_ca with a tcp:// broker: %v; want a refusal naming tls_ca", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 15s", what)
		}
	}
}
