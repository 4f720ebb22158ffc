package rosbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The rosbridge v2 operations.
const (
	opAdvertise          = "advertise"
	opUnadvertise        = "unadvertise"
	opPublish            = "publish"
	opSubscribe          = "subscribe"
	opUnsubscribe        = "unsubscribe"
	opCallService        = "call_service"
	opServiceResponse    = "service_response"
	opAdvertiseService   = "advertise_service"
	opUnadvertiseService = "unadvertise_service"
	opSetLevel           = "set_level"
	opFragment           = "fragment"
	opAuth               = "auth"
)

// message is one frame from a client: the fields of every operation this
// bridge reads. Fields it does not read (latch, queue_size, fragment_size…)
// are ignored, as rosbridge ignores them.
type message struct {
	Op           string
	ID           string
	Topic        string
	Type         string
	Msg          json.RawMessage
	Service      string
	Args         json.RawMessage
	ThrottleRate int // ms
	Compression  string
	Level        string
}

// wireMessage is message as JSON has it; id may be a string or a number.
type wireMessage struct {
	Op           *string         `json:"op"`
	ID           json.RawMessage `json:"id"`
	Topic        string          `json:"topic"`
	Type         string          `json:"type"`
	Msg          json.RawMessage `json:"msg"`
	Service      string          `json:"service"`
	Args         json.RawMessage `json:"args"`
	ThrottleRate *float64        `json:"throttle_rate"`
	Compression  string          `json:"compression"`
	Level        string          `json:"level"`
}

// parse reads one frame. The error says what is wrong in words a client's
// author can act on; the message it returns carries the id when one could
// be read, so the status can name the request.
func parse(data []byte) (message, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return message{}, errors.New("a rosbridge message is one JSON object with an \"op\" field")
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return message{}, fmt.Errorf("malformed message: %v (expected a JSON object such as {\"op\":\"subscribe\",\"topic\":\"/robot-1/pose\"})", err)
	}
	m := message{Topic: w.Topic, Type: w.Type, Msg: w.Msg, Service: w.Service, Args: w.Args, Compression: w.Compression, Level: w.Level}
	id, err := parseID(w.ID)
	if err != nil {
		return m, err
	}
	m.ID = id
	if w.Op == nil || *w.Op == "" {
		return m, errors.New("message without \"op\" (expected subscribe, unsubscribe, advertise, unadvertise, publish, call_service or set_level)")
	}
	m.Op = *w.Op
	if w.ThrottleRate != nil {
		r := *w.ThrottleRate
		if r < 0 || r > 3_600_000 || r != float64(int(r)) {
			return m, fmt.Errorf("%s: throttle_rate %v is not a whole number of milliseconds from 0 to 3600000", m.Op, r)
		}
		m.ThrottleRate = int(r)
	}
	needTopic := m.Op == opSubscribe || m.Op == opUnsubscribe || m.Op == opAdvertise || m.Op == opUnadvertise || m.Op == opPublish
	if m.Topic != "" || needTopic {
		if m.Topic, err = checkName("topic", m.Op, m.Topic); err != nil {
			return m, err
		}
	}
	if m.Service != "" || m.Op == opCallService {
		if m.Service, err = checkName("service", m.Op, m.Service); err != nil {
			return m, err
		}
	}
	switch m.Op {
	case opFragment:
		return m, errors.New("fragment: fragmented messages are not supported; send each message whole (at most the frame limit)")
	case opAdvertiseService, opUnadvertiseService, opServiceResponse:
		return m, fmt.Errorf("%s: this bridge does not host clients' services", m.Op)
	}
	if m.Op == opPublish && !isObject(m.Msg) {
		return m, fmt.Errorf("publish %s: \"msg\" must be a JSON object", m.Topic)
	}
	if m.Op == opCallService && len(m.Args) > 0 && !isObject(m.Args) && !bytes.Equal(bytes.TrimSpace(m.Args), []byte("null")) && !isEmptyArray(m.Args) {
		return m, fmt.Errorf("call_service %s: \"args\" must be a JSON object", m.Service)
	}
	return m, nil
}

// parseID reads an id: a string, a number or absent.
func parseID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("\"id\" must be a string or a number, got %.40s", raw)
}

// checkName checks a topic or service name — printable, bounded — and
// resolves a relative one against the root namespace, as rosbridge's node
// (at /) does: roslib asks for "rosapi/topics".
func checkName(field, op, name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%s: %q is missing", op, field)
	case len(name) > 256:
		return "", fmt.Errorf("%s: %s is longer than 256 bytes", op, field)
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", fmt.Errorf("%s: %s %q contains spaces or control characters", op, field, name)
	}
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return name, nil
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func isEmptyArray(raw json.RawMessage) bool {
	return bytes.Equal(bytes.Join(bytes.Fields(raw), nil), []byte("[]"))
}

// level is a status level; a client sees the messages at or below its own.
type level int

const (
	levelNone level = iota
	levelError
	levelWarning
	levelInfo
)

func parseLevel(s string) (level, bool) {
	switch s {
	case "none":
		return levelNone, true
	case "error":
		return levelError, true
	case "warning":
		return levelWarning, true
	case "info":
		return levelInfo, true
	}
	return 0, false
}

func (l level) String() string {
	switch l {
	case levelError:
		return "error"
	case levelWarning:
		return "warning"
	case levelInfo:
		return "info"
	}
	return "none"
}

// Messages the bridge sends.
type (
	statusMsg struct {
		Op    string `json:"op"`
		Level string `json:"level"`
		Msg   string `json:"msg"`
		ID    string `json:"id,omitempty"`
	}
	publishMsg struct {
		Op    string `json:"op"`
		Topic string `json:"topic"`
		Msg   any    `json:"msg"`
		ID    string `json:"id,omitempty"`
	}
	serviceResponseMsg struct {
		Op      string `json:"op"`
		ID      string `json:"id,omitempty"`
		Service string `json:"service"`
		Values  any    `json:"values"`
		Result  bool   `json:"result"`
	}
)
