// Package telemetry turns MQTT messages into readings: a subscription's
// mapping names the JSON fields of its payloads, their reading names and
// units; Sparkplug B topics (spBv1.0/group/TYPE/node[/device]) are
// recognised and their birth and death certificates mark nodes and devices
// online and offline. Bad payloads — not JSON, a field missing or not a
// number — are counted by kind and never stored as readings.
package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Field maps one JSON value of a payload to a reading.
type Field struct {
	Name string `json:"name"` // the reading's name, e.g. battery_voltage
	Path string `json:"path"` // dot-separated path into the payload, e.g. battery.voltage; "" for a bare number payload
	Unit string `json:"unit,omitempty"`
	// Optional fields missing from a payload are not an error.
	Optional bool `json:"optional,omitempty"`
}

// Subscription is a topic filter (MQTT wildcards + and #), its QoS, and how
// to read its payloads. With no fields, a message counts but yields no
// reading (Sparkplug topics, whose payloads are protobuf).
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
		for j, f := range sub.Fields {
			if f.Name == "" {
				return nil, fmt.Errorf("subscriptions[%d].fields[%d].name: empty", i, j)
			}
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

// Kind classifies a refused payload.
type Kind string

// Refusal kinds.
const (
	KindNotJSON      Kind = "not_json"
	KindMissingField Kind = "missing_field"
	KindNotNumber    Kind = "not_number"
)

// Error is a payload that did not map.
type Error struct {
	Kind  Kind
	Topic string
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("mqtt %s: field %s: %s", e.Topic, e.Field, e.Msg)
	}
	return fmt.Sprintf("mqtt %s: %s", e.Topic, e.Msg)
}

// Decode maps a payload by fields. It is all or nothing: if a required
// field is missing or not a number, no reading from the message is
// returned, because half a message may pair one robot's voltage with
// another moment's current.
func Decode(topic string, payload []byte, fields []Field, now time.Time) ([]Reading, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || dec.More() {
		msg := "payload is not JSON"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, &Error{Kind: KindNotJSON, Topic: topic, Msg: msg}
	}
	out := make([]Reading, 0, len(fields))
	for _, f := range fields {
		v, ok := lookup(doc, f.Path)
		if !ok {
			if f.Optional {
				continue
			}
			return nil, &Error{Kind: KindMissingField, Topic: topic, Field: f.Path, Msg: "missing"}
		}
		x, err := number(v)
		if err != nil {
			return nil, &Error{Kind: KindNotNumber, Topic: topic, Field: f.Path, Msg: err.Error()}
		}
		out = append(out, Reading{Topic: topic, Name: f.Name, Value: x, Unit: f.Unit, Time: now})
	}
	return out, nil
}

func lookup(doc any, path string) (any, bool) {
	if path == "" {
		return doc, true
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[k]; !ok {
			return nil, false
		}
	}
	return doc, true
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%s out of range", x)
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case nil:
		return 0, errors.New("null; want a number")
	}
	return 0, fmt.Errorf("%T; want a number", v)
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
