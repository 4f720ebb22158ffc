// Package link is the mqtt plugin's broker connection — MQTT 3.1.1 through
// github.com/eclipse/paho.mqtt.golang, MQTT 5 through
// github.com/eclipse/paho.golang's autopaho: it connects (retrying while
// the broker is down), subscribes to the configured filters on every
// connect (a reconnect after the broker restarted resubscribes), hands each
// message to a telemetry.State, and publishes.
package link

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
)

// Config is a broker and what to subscribe to.
type Config struct {
	Broker   string // tcp://host:port, or ssl://host:port (also tls://, mqtts://) for MQTT over TLS
	ClientID string // default depai-<random>
	User     string
	Password string
	Subs     []telemetry.Subscription
	// MaxReconnect caps the reconnect backoff (default 10 s).
	MaxReconnect time.Duration
	// KeepAlive is the MQTT keepalive (default 30 s): how soon a silent
	// broker is noticed.
	KeepAlive time.Duration
	// Version is 4 (MQTT 3.1.1, the default) or 5.
	Version int
	// TLS configures a TLS broker (ssl://, tls://, mqtts://): the CAs to
	// trust, the server name. Nil: the system's roots. Ignored for tcp://.
	TLS *tls.Config
}

// Secure reports whether broker is a TLS URL.
func Secure(broker string) bool {
	u, err := url.Parse(broker)
	return err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts")
}

// Client is a running connection.
type Client struct {
	c conn
}

// conn is one protocol version's client.
type conn interface {
	publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
	close()
}

// Start begins connecting and returns at once; st.Status says when the
// link is up. Messages arriving on the subscriptions go to st.
func Start(cfg Config, st *telemetry.State) (*Client, error) {
	if u, err := url.Parse(cfg.Broker); err != nil || u.Host == "" || (u.Scheme != "tcp" && u.Scheme != "mqtt" && !Secure(cfg.Broker)) {
		return nil, fmt.Errorf("mqtt: broker %q: want tcp://host:port, or ssl://host:port for TLS", cfg.Broker)
	}
	if Secure(cfg.Broker) {
		// Never below TLS 1.2, whatever the caller's config says.
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLS != nil {
			t = cfg.TLS.Clone()
			t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
		}
		cfg.TLS = t
	} else {
		cfg.TLS = nil
	}
	if cfg.ClientID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		cfg.ClientID = "depai-" + hex.EncodeToString(b)
	}
	if cfg.MaxReconnect <= 0 {
		cfg.MaxReconnect = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	switch cfg.Version {
	case 0, 4:
		return &Client{c: startV3(cfg, st)}, nil
	case 5:
		c, err := startV5(cfg, st)
		if err != nil {
			return nil, err
		}
		return &Client{c: c}, nil
	}
	return nil, fmt.Errorf("mqtt: protocol version %d; want 4 (3.1.1) or 5", cfg.Version)
}

// Publish sends one message and waits for the broker's acknowledgement
// (QoS 1 and 2) or until ctx ends.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	return c.c.publish(ctx, topic, payload, qos, retained)
}

// Close disconnects, letting in-flight work finish for up to 250 ms.
func (c *Client) Close() { c.c.close() }

type v3 struct{ c paho.Client }

func startV3(cfg Config, st *telemetry.State) *v3 {
	o := paho.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetUsername(cfg.User).SetPassword(cfg.Password).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(500 * time.Millisecond).SetMaxReconnectInterval(cfg.MaxReconnect).
		SetKeepAlive(cfg.KeepAlive).SetPingTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		// Messages are independent readings; order across topics does not
		// matter, and a slow handler must not stall the network loop.
		SetOrderMatters(false)
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	filters := make(map[string]byte, len(cfg.Subs))
	for _, s := range cfg.Subs {
		filters[s.Filter] = s.QoS
	}
	handler := func(_ paho.Client, m paho.Message) {
		st.Message(m.Topic(), m.Payload(), m.Retained(), time.Now())
	}
	o.SetOnConnectHandler(func(c paho.Client) {
		st.Connected()
		if len(filters) == 0 {
			return
		}
		go subscribeWithRetry(st, func() error {
			t := c.SubscribeMultiple(filters, handler)
			if !t.WaitTimeout(10 * time.Second) {
				return errors.New("no SUBACK within 10s")
			}
			if err := t.Error(); err != nil {
				return err
			}
			if sub, ok := t.(*paho.SubscribeToken); ok {
				for f, q := range sub.Result() {
					if q == 0x80 {
						return fmt.Errorf("the broker refused %q", f)
					}
				}
			}
			return nil
		})
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { st.LinkLost(err, time.Now()) })
	// A connect that fails (refused, an untrusted certificate) is retried
	// without ever being "lost"; it must still show in the status.
	o.SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
		if f, ok := n.(paho.ConnectionNotificationFailed); ok {
			st.Failed(fmt.Errorf("connect: %w", f.Reason), time.Now())
		}
	})
	c := paho.NewClient(o)
	c.Connect() // with ConnectRetry, completes when the broker is reached
	return &v3{c: c}
}

// subscribeWithRetry runs subscribe until it works, at most five times with
// growing pauses, recording each failure in st: a subscription lost to a
// busy broker must not leave the link up and deaf.
func subscribeWithRetry(st *telemetry.State, subscribe func() error) {
	for attempt := range 5 {
		err := subscribe()
		if err == nil {
			return
		}
		st.Failed(fmt.Errorf("subscribe, attempt %d of 5: %w", attempt+1, err), time.Now())
		time.Sleep(200 * time.Millisecond << attempt)
	}
}

// ErrNotConnected is a publish while the broker is unreachable.
var ErrNotConnected = errors.New("mqtt: not connected to the broker")

func (c *v3) publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	if !c.c.IsConnectionOpen() {
		return ErrNotConnected
	}
	t := c.c.Publish(topic, qos, retained, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt: publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: publish %s: %w", topic, ctx.Err())
	}
}

func (c *v3) close() { c.c.Disconnect(250) }
