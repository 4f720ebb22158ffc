package link

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
)

type v5 struct {
	cm     *autopaho.ConnectionManager
	cancel context.CancelFunc
}

func startV5(cfg Config, st *telemetry.State) (*v5, error) {
	u, err := url.Parse(strings.Replace(cfg.Broker, "tcp://", "mqtt://", 1))
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker %q: %w", cfg.Broker, err)
	}
	subs := make([]paho5.SubscribeOptions, 0, len(cfg.Subs))
	for _, s := range cfg.Subs {
		subs = append(subs, paho5.SubscribeOptions{Topic: s.Filter, QoS: s.QoS})
	}
	ac := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     uint16(cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		// Not autopaho.NewExponentialBackoff: it panics when MaxReconnect
		// is below its initial delay.
		ReconnectBackoff: func(attempt int) time.Duration {
			if attempt <= 0 {
				return 0
			}
			return min(100*time.Millisecond<<min(attempt-1, 16), cfg.MaxReconnect)
		},
		ConnectTimeout:  5 * time.Second,
		TlsCfg:          cfg.TLS,
		ConnectUsername: cfg.User,
		ConnectPassword: []byte(cfg.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho5.Connack) {
			st.Connected()
			if len(subs) == 0 {
				return
			}
			go subscribeWithRetry(st, func() error { // OnConnectionUp must not block
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ack, err := cm.Subscribe(ctx, &paho5.Subscribe{Subscriptions: subs})
				if err != nil {
					return err
				}
				for i, r := range ack.Reasons {
					if r >= 0x80 && i < len(subs) {
						return fmt.Errorf("the broker refused %q (reason 0x%02x)", subs[i].Topic, r)
					}
				}
				return nil
			})
		},
		OnConnectError: func(err error) { st.Failed(fmt.Errorf("connect: %w", err), time.Now()) },
		OnConnectionDown: func() bool {
			st.LinkLost(errors.New("MQTT 5 connection down"), time.Now())
			return true
		},
		ClientConfig: paho5.ClientConfig{
			ClientID: cfg.ClientID,
			OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
				st.Message(pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Retain, time.Now())
				return true, nil
			}},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, ac)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return &v5{cm: cm, cancel: cancel}, nil
}

func (c *v5) publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	actx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	err := c.cm.AwaitConnection(actx)
	cancel()
	if err != nil {
		return ErrNotConnected
	}
	if _, err := c.cm.Publish(ctx, &paho5.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retained}); err != nil {
		return fmt.Errorf("mqtt: publish %s: %w", topic, err)
	}
	return nil
}

func (c *v5) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	_ = c.cm.Disconnect(ctx)
	c.cancel()
}
