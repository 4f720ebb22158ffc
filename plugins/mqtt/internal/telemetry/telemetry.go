// Package telemetry turns MQTT messages into readings: a subscription's
// mapping names the JSON fields of its payloads, their reading names and
// units; Sparkplug B topics (spBv1.0/group/TYPE/node[/device]) carry
// protobuf payloads (internal/sparkplug): births and deaths mark nodes and
// devices online and offline, and numeric metrics become readings. Bad payloads — not JSON, a field missing or not a
// number — are counted by kind and never stored as readings.
package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/depai/depai/plugins/internal/jsonmap"
)

// Field maps one JSON value of a payload to a reading.
type Field = jsonmap.Field

// Subscription is a topic filter (MQTT wildcards + and #), its QoS, and how
// to read its JSON payloads. With no fields, a message counts but yields
// no reading. Sparkplug topics need no fields: their metrics name themselves.
type Subscription struct {
	Filter string  `json:"filter"`
	QoS    byte    `json:"qos,omitempty"`
	Fields []Field `json:"fields,omitempty"`
}

// ParseSubscriptions reads the subscriptions config value: a JSON array of
// Subscription. Errors name the entry and field.
func ParseSubscriptions(s string) ([]Subscription, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var subs []Subscription
	if err := dec.Decode(&subs); err != nil {
		return nil, fmt.Errorf("subscriptions: want a JSON array of {filter, qos, fields:[{name, path, unit}]}: %w", err)
	}
	if len(subs) == 0 {
		return nil, errors.New("subscriptions: empty; give at least one {filter}")
	}
	for i, sub := range subs {
		if err := ValidFilter(sub.Filter); err != nil {
			return nil, fmt.Errorf("subscriptions[%d].filter %q: %w", i, sub.Filter, err)
		}
		if sub.QoS > 2 {
			return nil, fmt.Errorf("subscriptions[%d].qos %d: want 0, 1 or 2", i, sub.QoS)
		}
		if err := jsonmap.ValidFields(sub.Fields); err != nil {
			return nil, fmt.Errorf("subscriptions[%d].%w", i, err)
		}
	}
	return subs, nil
}

// ValidFilter checks an MQTT topic filter: '#' only last and alone in its
// level, '+' alone in its level.
func ValidFilter(f string) error {
	if f == "" {
		return errors.New("empty")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New("# must be the last level")
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return errors.New("+ and # must fill a whole level")
		}
	}
	return nil
}

// Match reports whether topic matches filter. As MQTT says, wildcards at
// the first level do not match topics starting with '$'.
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// Reading is one value from a message.
type Reading struct {
	Topic string    `json:"topic"`
	Name  string    `json:"name"`
	Value float64   `json:"value"`
	Unit  string    `json:"unit,omitempty"`
	Time  time.Time `json:"time" jsonschema:"when the plugin received the message"`
}

// Decode maps a payload by fields (all or nothing, see jsonmap.Decode);
// errors name the topic and hold a *jsonmap.Error.
func Decode(topic string, payload []byte, fields []Field, now time.Time) ([]Reading, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	vs, err := jsonmap.Decode(payload, fields)
	if err != nil {
		return nil, fmt.Errorf("mqtt %s: %w", topic, err)
	}
	out := make([]Reading, len(vs))
	for i, v := range vs {
		out[i] = Reading{Topic: topic, Name: v.Name, Value: v.Value, Unit: v.Unit, Time: now}
	}
	return out, nil
}

// Sparkplug is a parsed Sparkplug B topic.
type Sparkplug struct {
	Group, Type, Node, Device string
}

// ParseSparkplug parses spBv1.0/group/TYPE/node[/device]; ok is false for
// other topics. STATE (host application) topics are not device topics.
func ParseSparkplug(topic string) (Sparkplug, bool) {
	f := strings.Split(topic, "/")
	if len(f) < 4 || len(f) > 5 || f[0] != "spBv1.0" || f[1] == "" || f[3] == "" {
		return Sparkplug{}, false
	}
	s := Sparkplug{Group: f[1], Type: f[2], Node: f[3]}
	if len(f) == 5 {
		if f[4] == "" {
			return Sparkplug{}, false
		}
		s.Device = f[4]
	}
	switch s.Type {
	case "NBIRTH", "NDEATH", "NDATA", "NCMD":
		if s.Device != "" {
			return Sparkplug{}, false
		}
	case "DBIRTH", "DDEATH", "DDATA", "DCMD":
		if s.Device == "" {
			return Sparkplug{}, false
		}
	default:
		return Sparkplug{}, false
	}
	return s, true
}

// ID names the node or device: group/node or group/node/device.
func (s Sparkplug) ID() string {
	id := s.Group + "/" + s.Node
	if s.Device != "" {
		id += "/" + s.Device
	}
	return id
}
