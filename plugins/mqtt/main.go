// Command mqtt is the depai plugin for MQTT telemetry (3.1.1 and 5): it
// subscribes to configured topic filters (wildcards + and #), maps each
// JSON payload's fields to readings with units, decodes Sparkplug B
// payloads (protobuf: births declare metrics and aliases, data become
// readings, deaths take nodes and devices offline), and publishes commands only through
// mqtt.publish — an actuator tool, so the agent's policy and /stop govern
// it — and only to configured topics.
//
// It is a process plugin, not WASM: it holds a long-lived broker
// connection whose client library reads it from its own goroutines, beyond
// the WASM sandbox. A process plugin is trusted native code with the
// network of the agent's user; grant it only to a broker you trust.
//
// Config (granted keys): broker (tcp://host:port, or ssl://host:port for
// MQTT over TLS), tls_ca (a PEM file of the CAs that sign the broker's
// certificate; default the system's roots), tls_server_name (the name the
// certificate must carry; default the broker's host), client_id, user,
// subscriptions (a JSON array of {filter, qos, fields:[{name, path, unit,
// optional}]}), publish_topics (comma-separated filters mqtt.publish may
// publish to; none: it publishes nowhere), version (3.1.1, the default, or
// 5). The password is the secret
// mqtt_password.
//
// The client is the plugin's run hook (sdk.Run): the host starts it right
// after the load, it reads the config then, and it runs until the plugin
// is unloaded. A refused config is logged and is every call's answer.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/depai/depai/plugins/internal/live"
	"github.com/depai/depai/plugins/mqtt/internal/link"
	"github.com/depai/depai/plugins/mqtt/internal/telemetry"
	"github.com/depai/depai/sdk"
	"github.com/depai/depai/sdk/wire"
)

var configKeys = []string{"broker", "client_id", "user", "subscriptions", "publish_topics", "version", "tls_ca", "tls_server_name"}

const secretPassword = "mqtt_password"

func init() {
	sdk.Plugin("mqtt", "0.1.0")
	sdk.Requests(wire.Capabilities{Config: configKeys, Secrets: []string{secretPassword}, Actuator: true})
	sdk.Sensor("mqtt.telemetry", "The newest reading of every mapped topic field, with units.", 5*time.Second, telemetryReading)
	sdk.Tool("mqtt.readings", "The newest reading of every mapped topic field, with units and time.", readings)
	sdk.Tool("mqtt.devices", "Sparkplug B nodes and devices and whether they are online (birth) or offline (death).", devices)
	sdk.Tool("mqtt.status", "The broker link: connected, reconnects, messages, readings, refused payloads by kind, last error.", status)
	sdk.Tool("mqtt.publish", "Publishes a command to a device over MQTT (only to configured topics).", publish, sdk.Actuator())
	sdk.Run(live.Run(&clients, "mqtt", start))
}

func main() { sdk.Main() }

// settings is the plugin's config.
type settings struct {
	broker, clientID, user, password string
	subscriptions, publishTopics     string
	version                          int
	tls                              *tls.Config
}

func config(ctx context.Context) (settings, []telemetry.Subscription, []string, error) {
	vals, err := sdk.ConfigValues(ctx, configKeys...)
	if err != nil {
		return settings{}, nil, nil, err
	}
	pw, err := sdk.Secret(ctx, secretPassword)
	if we, ok := errors.AsType[*wire.Error](err); err != nil && !(ok && we.Code == wire.CodeNotFound) {
		return settings{}, nil, nil, err
	}
	s := settings{broker: vals["broker"], clientID: vals["client_id"], user: vals["user"], password: pw, subscriptions: vals["subscriptions"], publishTopics: vals["publish_topics"]}
	switch vals["version"] {
	case "", "3.1.1", "4":
		s.version = 4
	case "5":
		s.version = 5
	default:
		return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config version %q: want 3.1.1 or 5", vals["version"])
	}
	if s.broker == "" {
		return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config broker: empty; want tcp://host:port")
	}
	if link.Secure(s.broker) {
		s.tls = &tls.Config{ServerName: vals["tls_server_name"], MinVersion: tls.VersionTLS12}
		if ca, ok := vals["tls_ca"]; ok {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config tls_ca %q: %v", ca, err)
			}
			s.tls.RootCAs = x509.NewCertPool()
			if !s.tls.RootCAs.AppendCertsFromPEM(pem) {
				return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config tls_ca %q: no PEM certificate in it", ca)
			}
		}
	} else if _, ok := vals["tls_ca"]; ok {
		return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config tls_ca is set but broker %q is not TLS; want ssl://host:port", s.broker)
	}
	subs, err := telemetry.ParseSubscriptions(s.subscriptions)
	if err != nil {
		return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config %v", err)
	}
	var pubs []string
	for _, f := range strings.Split(s.publishTopics, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if err := telemetry.ValidFilter(f); err != nil {
			return s, nil, nil, sdk.Errorf(wire.CodeInvalidArgument, "mqtt config publish_topics %q: %v", f, err)
		}
		pubs = append(pubs, f)
	}
	return s, subs, pubs, nil
}

// clients is what the run hook started, for the handlers.
var clients live.Slot[running]

// running is a connected (or connecting) client, what it learned, and the
// topics mqtt.publish may publish to.
type running struct {
	st     *telemetry.State
	client *link.Client
	pubs   []string
}

// start connects to the configured broker; the client runs until ctx ends.
func start(ctx context.Context) (running, error) {
	cfg, subs, pubs, err := config(ctx)
	if err != nil {
		return running{}, err
	}
	st := telemetry.NewState(cfg.broker, subs)
	c, err := link.Start(link.Config{Broker: cfg.broker, ClientID: cfg.clientID, User: cfg.user, Password: cfg.password, Subs: subs, Version: cfg.version, TLS: cfg.tls}, st)
	if err != nil {
		return running{}, sdk.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	context.AfterFunc(ctx, c.Close)
	return running{st: st, client: c, pubs: pubs}, nil
}

// Telemetry is the mqtt.telemetry reading and mqtt.readings's answer.
type Telemetry struct {
	Readings []telemetry.Reading `json:"readings"`
}

func telemetryReading(ctx context.Context) (Telemetry, error) {
	r, err := clients.Get(ctx)
	if err != nil {
		return Telemetry{}, err
	}
	return Telemetry{Readings: r.st.Latest()}, nil
}

// ReadingsIn is mqtt.readings's input.
type ReadingsIn struct {
	Topic string `json:"topic,omitempty" jsonschema:"only readings whose topic matches this filter"`
}

func readings(ctx context.Context, in ReadingsIn) (Telemetry, error) {
	r, err := clients.Get(ctx)
	if err != nil {
		return Telemetry{}, err
	}
	if in.Topic != "" {
		if err := telemetry.ValidFilter(in.Topic); err != nil {
			return Telemetry{}, sdk.Errorf(wire.CodeInvalidArgument, "topic %q: %v", in.Topic, err)
		}
	}
	out := Telemetry{Readings: []telemetry.Reading{}}
	for _, rd := range r.st.Latest() {
		if in.Topic == "" || telemetry.Match(in.Topic, rd.Topic) {
			out.Readings = append(out.Readings, rd)
		}
	}
	return out, nil
}

// DevicesIn is mqtt.devices's input (none).
type DevicesIn struct{}

// DevicesOut is mqtt.devices's answer.
type DevicesOut struct {
	Devices []telemetry.Device `json:"devices"`
}

func devices(ctx context.Context, _ DevicesIn) (DevicesOut, error) {
	r, err := clients.Get(ctx)
	if err != nil {
		return DevicesOut{}, err
	}
	return DevicesOut{Devices: r.st.Devices()}, nil
}

// StatusIn is mqtt.status's input (none).
type StatusIn struct{}

func status(ctx context.Context, _ StatusIn) (telemetry.Status, error) {
	r, err := clients.Get(ctx)
	if err != nil {
		return telemetry.Status{}, err
	}
	return r.st.Status(), nil
}

// PublishIn is mqtt.publish's input.
type PublishIn struct {
	Topic    string          `json:"topic" jsonschema:"a topic allowed by publish_topics"`
	Payload  json.RawMessage `json:"payload" jsonschema:"the JSON to send"`
	QoS      byte            `json:"qos,omitempty" jsonschema:"1 (default) or 2; commands are always acknowledged"`
	Retained bool            `json:"retained,omitempty"`
}

// PublishOut is mqtt.publish's answer.
type PublishOut struct {
	Topic string `json:"topic"`
	Bytes int    `json:"bytes"`
}

func publish(ctx context.Context, in PublishIn) (PublishOut, error) {
	r, err := clients.Get(ctx)
	if err != nil {
		return PublishOut{}, err
	}
	st, c, pubs := r.st, r.client, r.pubs
	if in.Topic == "" || strings.ContainsAny(in.Topic, "+#") {
		return PublishOut{}, sdk.Errorf(wire.CodeInvalidArgument, "topic %q: want a topic name without wildcards", in.Topic)
	}
	allowed := false
	for _, f := range pubs {
		allowed = allowed || telemetry.Match(f, in.Topic)
	}
	if !allowed {
		return PublishOut{}, sdk.Errorf(wire.CodeDenied, "topic %q is not in publish_topics %q", in.Topic, strings.Join(pubs, ","))
	}
	if in.QoS > 2 {
		return PublishOut{}, sdk.Errorf(wire.CodeInvalidArgument, "qos %d: want 0, 1 or 2", in.QoS)
	}
	if !json.Valid(in.Payload) {
		return PublishOut{}, sdk.Errorf(wire.CodeInvalidArgument, "payload is not JSON")
	}
	qos := max(in.QoS, 1) // a command that may be lost silently is not offered
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Publish(ctx, in.Topic, in.Payload, qos, in.Retained); err != nil {
		return PublishOut{}, &wire.Error{Code: wire.CodeUnavailable, Message: err.Error(), Retryable: true}
	}
	st.Published()
	return PublishOut{Topic: in.Topic, Bytes: len(in.Payload)}, nil
}
