// Package sparkplug decodes Sparkplug B payloads (Eclipse Sparkplug 3.0,
// sparkplug_b.proto's Payload and Metric), written from the spec on
// protowire rather than generated: the plugin needs the metrics' names,
// aliases, times, types and scalar values, and nothing else — DataSets,
// Templates, properties and metadata are skipped, never misread.
//
//	message Payload { uint64 timestamp = 1; repeated Metric metrics = 2; uint64 seq = 3; string uuid = 4; bytes body = 5; }
//	message Metric  { string name = 1; uint64 alias = 2; uint64 timestamp = 3; uint32 datatype = 4;
//	                  bool is_historical = 5; bool is_transient = 6; bool is_null = 7; …
//	                  oneof value { uint32 int_value = 10; uint64 long_value = 11; float float_value = 12;
//	                                double double_value = 13; bool boolean_value = 14; string string_value = 15;
//	                                bytes bytes_value = 16; DataSet dataset_value = 17; Template template_value = 18; … } }
package sparkplug

import (
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is a metric's Sparkplug data type.
type DataType uint32

// Data types (Sparkplug 3.0, 6.4.16).
const (
	Int8     DataType = 1
	Int16    DataType = 2
	Int32    DataType = 3
	Int64    DataType = 4
	UInt8    DataType = 5
	UInt16   DataType = 6
	UInt32   DataType = 7
	UInt64   DataType = 8
	Float    DataType = 9
	Double   DataType = 10
	Boolean  DataType = 11
	String   DataType = 12
	DateTime DataType = 13
	Text     DataType = 14
	UUID     DataType = 15
	DataSet  DataType = 16
	Bytes    DataType = 17
	File     DataType = 18
	Template DataType = 19
)

// Payload is a decoded Sparkplug B payload.
type Payload struct {
	Timestamp time.Time // zero when absent
	Seq       uint64
	HasSeq    bool
	UUID      string
	Metrics   []Metric
}

// Metric is one metric. A numeric, boolean (0 or 1) or DateTime value is
// in Number (IsNumber set); a string, text or UUID in Text.
type Metric struct {
	Name                        string
	Alias                       uint64
	HasAlias                    bool
	Timestamp                   time.Time
	Type                        DataType
	Historical, Transient, Null bool
	Number                      float64
	IsNumber                    bool
	Text                        string
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed Sparkplug B payload")

// MaxMetrics bounds the metrics of one payload.
const MaxMetrics = 10000

// Decode parses b.
func Decode(b []byte) (Payload, error) {
	var p Payload
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return p, fmt.Errorf("%w: tag: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var err error
		switch {
		case num == 1 && typ == protowire.VarintType:
			var v uint64
			v, b, err = varint(b, "timestamp")
			p.Timestamp = millis(v)
		case num == 2 && typ == protowire.BytesType:
			var mb []byte
			if mb, b, err = bytesField(b, "metrics"); err == nil {
				if len(p.Metrics) == MaxMetrics {
					return p, fmt.Errorf("%w: more than %d metrics", ErrMalformed, MaxMetrics)
				}
				var m Metric
				if m, err = decodeMetric(mb); err != nil {
					err = fmt.Errorf("metrics[%d]: %w", len(p.Metrics), err)
				}
				p.Metrics = append(p.Metrics, m)
			}
		case num == 3 && typ == protowire.VarintType:
			p.Seq, b, err = varint(b, "seq")
			p.HasSeq = true
		case num == 4 && typ == protowire.BytesType:
			var s []byte
			s, b, err = bytesField(b, "uuid")
			p.UUID = string(s)
		case num < 5 || (num == 5 && typ != protowire.BytesType):
			return p, fmt.Errorf("%w: field %d has wire type %d", ErrMalformed, num, typ)
		default:
			b, err = skip(b, num, typ)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func decodeMetric(b []byte) (Metric, error) {
	var m Metric
	var hasValue bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, fmt.Errorf("%w: tag: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var err error
		var v uint64
		switch {
		case num == 1 && typ == protowire.BytesType:
			var s []byte
			s, b, err = bytesField(b, "name")
			m.Name = string(s)
		case num == 2 && typ == protowire.VarintType:
			m.Alias, b, err = varint(b, "alias")
			m.HasAlias = true
		case num == 3 && typ == protowire.VarintType:
			v, b, err = varint(b, "timestamp")
			m.Timestamp = millis(v)
		case num == 4 && typ == protowire.VarintType:
			v, b, err = varint(b, "datatype")
			m.Type = DataType(v)
		case num >= 5 && num <= 7 && typ == protowire.VarintType:
			v, b, err = varint(b, "flag")
			switch num {
			case 5:
				m.Historical = v != 0
			case 6:
				m.Transient = v != 0
			case 7:
				m.Null = v != 0
			}
		case (num == 10 || num == 11 || num == 14) && typ == protowire.VarintType:
			v, b, err = varint(b, "value")
			hasValue = true
			m.IsNumber, m.Number = true, integer(num, v, m.Type)
		case num == 12 && typ == protowire.Fixed32Type:
			var f uint32
			f, n = protowire.ConsumeFixed32(b)
			if n < 0 {
				return m, fmt.Errorf("%w: float_value: %v", ErrMalformed, protowire.ParseError(n))
			}
			b, hasValue = b[n:], true
			m.IsNumber, m.Number = true, float64(math.Float32frombits(f))
		case num == 13 && typ == protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
			if n < 0 {
				return m, fmt.Errorf("%w: double_value: %v", ErrMalformed, protowire.ParseError(n))
			}
			b, hasValue = b[n:], true
			m.IsNumber, m.Number = true, math.Float64frombits(v)
		case num == 15 && typ == protowire.BytesType:
			var s []byte
			s, b, err = bytesField(b, "string_value")
			hasValue, m.Text = true, string(s)
		case (num == 8 || num == 9) && typ == protowire.BytesType:
			// metadata, properties
			b, err = skip(b, num, typ)
		case num >= 1 && num <= 15:
			return m, fmt.Errorf("%w: metric field %d has wire type %d", ErrMalformed, num, typ)
		default:
			// bytes, DataSet, Template, extension values.
			hasValue = hasValue || (num >= 16 && num <= 19)
			b, err = skip(b, num, typ)
		}
		if err != nil {
			return m, err
		}
	}
	if !hasValue && !m.Null {
		// A metric with neither a value nor is_null cannot be read as
		// anything; a reader must not take it for zero.
		m.Null = true
	}
	return m, nil
}

// integer reads a varint value by the metric's type: Int8–Int32 are sent
// as the two's complement in int_value (uint32), Int64 in long_value.
func integer(num protowire.Number, v uint64, t DataType) float64 {
	switch {
	case num == 14:
		if v != 0 {
			return 1
		}
		return 0
	case num == 10 && (t == Int8 || t == Int16 || t == Int32):
		return float64(int32(uint32(v)))
	case num == 10:
		return float64(uint32(v))
	case t == Int64:
		return float64(int64(v))
	}
	return float64(v)
}

func millis(v uint64) time.Time {
	if v == 0 || v > math.MaxInt64/uint64(time.Millisecond) {
		return time.Time{}
	}
	return time.UnixMilli(int64(v)).UTC()
}

func varint(b []byte, field string) (uint64, []byte, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, b, fmt.Errorf("%w: %s: %v", ErrMalformed, field, protowire.ParseError(n))
	}
	return v, b[n:], nil
}

func bytesField(b []byte, field string) ([]byte, []byte, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, b, fmt.Errorf("%w: %s: %v", ErrMalformed, field, protowire.ParseError(n))
	}
	return v, b[n:], nil
}

func skip(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return b, fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
	}
	return b[n:], nil
}

// BdSeq is the birth/death sequence number an NBIRTH or NDEATH carries as
// its bdSeq metric.
func (p Payload) BdSeq() (uint64, bool) {
	for _, m := range p.Metrics {
		if m.Name == "bdSeq" && m.IsNumber && m.Number >= 0 {
			return uint64(m.Number), true
		}
	}
	return 0, false
}
