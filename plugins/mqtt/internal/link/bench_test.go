package link_test

import (
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/depai/depai/plugins/mqtt/internal/brokertest"
	"github.com/depai/depai/plugins/mqtt/internal/link"
	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
)

// BenchmarkPublishToReading measures one message's way from a device's
// publish (QoS 1, acknowledged) through the broker to a decoded reading in
// the plugin's state, against embedded mochi over loopback, for each
// protocol version; p50 and p99 are reported. The wait spins on the state
// (no hook exists for it), yielding between looks.
func BenchmarkPublishToReading(b *testing.B) {
	for _, v := range []int{4, 5} {
		b.Run("mqtt"+strconv.Itoa(v), func(b *testing.B) {
			broker := brokertest.Mochi(b)
			subs := []telemetry.Subscription{{Filter: "bench/+/t", QoS: 1, Fields: []telemetry.Field{{Name: "seq", Path: "seq"}}}}
			st := telemetry.NewState(broker, subs)
			c, err := link.Start(link.Config{Broker: broker, Subs: subs, Version: v}, st)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			p := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("bench-pub"))
			if tok := p.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				b.Fatal(tok.Error())
			}
			defer p.Disconnect(100)
			wait := func(seq int) bool {
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
					if ls := st.Latest(); len(ls) == 1 && ls[0].Value == float64(seq) {
						return true
					}
					runtime.Gosched() // let the broker and client goroutines run

				}
				return false
			}
			// Until the subscription is in place, messages are lost; warm up.
			for seq := -1; ; seq-- {
				p.Publish("bench/r1/t", 1, false, `{"seq":`+strconv.Itoa(seq)+`}`).Wait()
				if wait(seq) {
					break
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				p.Publish("bench/r1/t", 1, false, `{"seq":`+strconv.Itoa(i)+`}`)
				if !wait(i) {
					b.Fatalf("message %d never became a reading", i)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
