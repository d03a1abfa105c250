package simulator

import (
	"bytes"
	"strings"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Message is one MQTT publish as a device or a site's system sends it.
// HTTPRequests renders it for the HTTP API instead.
type Message struct {
	// SendAt is the device time the message is sent; it is never before
	// the device time of the records it holds.
	SendAt time.Time
	// Kind is record.KindReading or record.KindHandover.
	Kind record.Kind
	// Shipment is the shipment the message belongs to.
	Shipment string
	// Device is the device that sends readings; "" for handovers.
	Device string
	// Scenario is the fault the message carries or repeats; 0 for normal traffic.
	Scenario Scenario
	// Resend is set when every record of the message was sent before.
	Resend bool

	items  []item
	array  bool   // publish as a JSON array even with one item
	raw    []byte // the whole payload, when it is not built from items
	topic  string // overrides the MQTT topic
	reject *Rejection
}

// Rejection is the answer the gateway must give to a record or a message:
// the rejection reason token of record/errors.go and the field at fault.
type Rejection struct {
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
}

// item is one record of a message.
type item struct {
	json     []byte // the wire object, without shipment (and device) members
	seq      uint64 // readings
	ts       time.Time
	tempC    float64
	defrost  bool
	door     bool
	id       string // handovers
	reject   *Rejection
	scenario Scenario
}

// Records returns the number of records in the message (1 for a message
// that is not JSON).
func (m *Message) Records() int {
	if m.raw != nil {
		return 1
	}
	return len(m.items)
}

// Topic returns the MQTT topic the message is published on.
func (m *Message) Topic() string {
	switch {
	case m.topic != "":
		return m.topic
	case m.Kind == record.KindHandover:
		return "coldchain/v1/" + m.Shipment + "/handovers"
	}
	return "coldchain/v1/" + m.Shipment + "/" + m.Device + "/readings"
}

// Payload returns the MQTT payload: one object, or an array of them.
func (m *Message) Payload() []byte {
	if m.raw != nil {
		return m.raw
	}
	if len(m.items) == 1 && !m.array {
		return m.items[0].json
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range m.items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.items[i].json)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// HTTPRequest is one POST to the gateway's HTTP API.
type HTTPRequest struct {
	// Path is /v1/readings or /v1/handovers.
	Path string
	// Body is a JSON array whose items name their shipment (and device).
	Body []byte
	// Records is the number of records in Body.
	Records int
	// Reject is set when the gateway must refuse the request.
	Reject *Rejection
}

// HTTPRequests renders the message for the HTTP API, which refuses a whole
// request when one item is invalid: the valid records go in one request
// and each invalid one in a request of its own, so that the records the
// gateway stores are the same over both transports.
func (m *Message) HTTPRequests() []HTTPRequest {
	path := "/v1/readings"
	prefix := `{"shipment":"` + m.Shipment + `","device":"` + m.Device + `",`
	if m.Kind == record.KindHandover {
		path = "/v1/handovers"
		prefix = `{"shipment":"` + m.Shipment + `",`
	}
	if m.raw != nil {
		return []HTTPRequest{{Path: path, Body: m.raw, Records: 1, Reject: m.reject}}
	}
	var out []HTTPRequest
	var good strings.Builder
	n := 0
	for i := range m.items {
		it := &m.items[i]
		body := prefix + string(it.json[1:])
		if it.reject != nil {
			out = append(out, HTTPRequest{Path: path, Body: []byte("[" + body + "]"), Records: 1, Reject: it.reject})
			continue
		}
		if n == 0 {
			good.WriteByte('[')
		} else {
			good.WriteByte(',')
		}
		good.WriteString(body)
		n++
	}
	if n > 0 {
		good.WriteByte(']')
		out = append([]HTTPRequest{{Path: path, Body: []byte(good.String()), Records: n}}, out...)
	}
	return out
}
