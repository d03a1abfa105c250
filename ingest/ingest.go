// Package ingest turns transport messages — MQTT publishes and HTTP bodies
// — into records on the journal. It validates every record, appends the
// good ones exactly once, dead-letters the bad ones with their original
// bytes and a reason, and returns only when all of that is durable, so the
// transport can acknowledge the sender.
//
// Transports live in subpackages named after the system they talk to:
// ingest/mqtt (a paho subscriber on an external broker); the embedded
// broker (embedded/mqttbroker) and the HTTP API (api) call Ingest directly.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// Journal is what ingest needs of the durable log.
type Journal interface {
	Append(ctx context.Context, entries []journal.Entry, meta journal.Meta, out []journal.Result) error
	DeadLetter(ctx context.Context, dls []journal.DeadLetter) error
}

var _ Journal = (*journal.Journal)(nil)

// Config bounds what the gateway accepts and how much it works on at once.
type Config struct {
	// MaxPayload is the largest message or request body in bytes.
	MaxPayload int `yaml:"max_payload"`
	// MaxRecords is the largest batch array.
	MaxRecords int `yaml:"max_records"`
	// MaxFuture is how far ahead of the gateway clock a ts may be.
	MaxFuture time.Duration `yaml:"max_future"`
	// InFlight bounds messages being validated and journaled at once;
	// further messages wait, which holds back the senders' acks.
	InFlight int `yaml:"in_flight"`
	// Devices, when not empty, is the list of devices allowed to send;
	// readings of any other device are rejected as unknown_device.
	Devices []string `yaml:"devices"`
}

// DefaultConfig returns the defaults the product documents.
func DefaultConfig() Config {
	return Config{MaxPayload: 4 << 20, MaxRecords: 10000, MaxFuture: 5 * time.Minute, InFlight: 256}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.MaxPayload < 1024:
		return fmt.Errorf("ingest.max_payload: must be at least 1024 bytes, got %d", c.MaxPayload)
	case c.MaxRecords < 1:
		return fmt.Errorf("ingest.max_records: must be at least 1, got %d", c.MaxRecords)
	case c.MaxFuture < 0:
		return fmt.Errorf("ingest.max_future: must not be negative")
	case c.InFlight < 1:
		return fmt.Errorf("ingest.in_flight: must be at least 1, got %d", c.InFlight)
	}
	for _, d := range c.Devices {
		if !record.ValidID(d) {
			return fmt.Errorf("ingest.devices: %q is not a valid device id (1–64 of A–Z a–z 0–9 _ -)", d)
		}
	}
	return nil
}

// Message is one transport message.
type Message struct {
	// Transport is "mqtt" or "http".
	Transport string
	// Topic is the MQTT topic or the HTTP path.
	Topic string
	// Kind is the record kind when the transport knows it (HTTP paths); for
	// MQTT it is derived from the topic.
	Kind record.Kind
	// Scope is what the topic says of shipment and device.
	Scope    record.Scope
	Payload  []byte
	Received time.Time
	// AllOrNothing refuses the whole message when any record is invalid:
	// nothing is stored and every bad record is reported and dead-lettered.
	// HTTP uses it, since its caller gets the answer and can resend.
	AllOrNothing bool
}

func (m *Message) source() string { return m.Transport + ":" + m.Topic }

// Summary says what happened to a message's records.
type Summary struct {
	Records    int `json:"records"`
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	// Rejected lists each refused record (or the whole message, Index -1)
	// with its reason; conflicts are among them.
	Rejected []*record.Error `json:"rejected"`
}

// Refused reports whether the message as a whole was not accepted.
func (s *Summary) Refused() bool {
	return s.Accepted+s.Duplicates == 0 && len(s.Rejected) > 0
}

// ErrStopping is returned when the ingester stops before a message is
// durable; the transport must not acknowledge it.
var ErrStopping = errors.New("ingest stopping")

// Ingester validates and journals messages. It is safe for concurrent use.
type Ingester struct {
	cfg     Config
	j       Journal
	log     *zap.Logger
	reject  *zap.Logger // sampled, so a bad feed cannot flood the log
	sem     chan struct{}
	now     func() time.Time
	limits  record.Limits
	m       ingestMetrics
	devices map[string]struct{}
}

// New returns an ingester appending to j. now is the gateway clock (nil
// for time.Now), read only for the future-timestamp check.
func New(cfg Config, j Journal, reg *metrics.Registry, log *zap.Logger, now func() time.Time) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	in := &Ingester{
		cfg: cfg, j: j, log: log, now: now,
		reject: log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			// At most 10 rejections a second are logged in full, then one
			// in 1,000; metrics and dead letters still count every one.
			return zapcore.NewSamplerWithOptions(c, time.Second, 10, 1000)
		})),
		sem: make(chan struct{}, cfg.InFlight),
		m:   newIngestMetrics(reg),
	}
	in.limits = record.DefaultLimits()
	in.limits.MaxRecords = cfg.MaxRecords
	in.limits.MaxFuture = cfg.MaxFuture
	if len(cfg.Devices) > 0 {
		in.devices = make(map[string]struct{}, len(cfg.Devices))
		for _, d := range cfg.Devices {
			in.devices[d] = struct{}{}
		}
		in.limits.KnownDevice = func(d string) bool { _, ok := in.devices[d]; return ok }
	}
	return in, nil
}

// ParseTopic maps an MQTT topic to the record kind and scope it carries:
// coldchain/v1/{shipment}/{device}/readings or coldchain/v1/{shipment}/handovers.
func ParseTopic(topic string) (record.Kind, record.Scope, *record.Error) {
	const prefix = "coldchain/v1/"
	unknown := &record.Error{Reason: record.ReasonUnknownTopic, Index: -1,
		Detail: fmt.Sprintf("topic %q is not an ingest topic: publish readings to coldchain/v1/{shipment}/{device}/readings and handovers to coldchain/v1/{shipment}/handovers", topic)}
	if !strings.HasPrefix(topic, prefix) {
		return 0, record.Scope{}, unknown
	}
	parts := strings.Split(topic[len(prefix):], "/")
	var (
		kind  record.Kind
		scope record.Scope
	)
	switch {
	case len(parts) == 3 && parts[2] == "readings":
		kind, scope = record.KindReading, record.Scope{Shipment: parts[0], Device: parts[1]}
	case len(parts) == 2 && parts[1] == "handovers":
		kind, scope = record.KindHandover, record.Scope{Shipment: parts[0]}
	default:
		return 0, record.Scope{}, unknown
	}
	if !record.ValidID(scope.Shipment) {
		return 0, scope, &record.Error{Reason: record.ReasonInvalidID, Field: "topic", Index: -1,
			Detail: fmt.Sprintf("shipment %q in the topic must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", scope.Shipment)}
	}
	if kind == record.KindReading && !record.ValidID(scope.Device) {
		return 0, scope, &record.Error{Reason: record.ReasonInvalidID, Field: "topic", Index: -1,
			Detail: fmt.Sprintf("device %q in the topic must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", scope.Device)}
	}
	return kind, scope, nil
}

// Ingest validates msg, appends its good records exactly once and
// dead-letters the rest. It returns nil once every record of the message is
// durable somewhere (stored, known as a duplicate, or dead-lettered): the
// transport may then acknowledge the sender. Transient journal failures are
// retried with backoff until ctx ends; then it returns an error wrapping
// ErrStopping and the transport must not acknowledge.
func (in *Ingester) Ingest(ctx context.Context, msg Message) (Summary, error) {
	select {
	case in.sem <- struct{}{}:
	case <-ctx.Done():
		return Summary{}, fmt.Errorf("%w: %w", ErrStopping, ctx.Err())
	}
	defer func() { <-in.sem }()
	in.m.inFlight.Add(1)
	defer in.m.inFlight.Add(-1)
	in.m.messages(msg.Transport).Inc()

	var sum Summary
	var dls []journal.DeadLetter
	refuse := func(err *record.Error, raw []byte) {
		sum.Rejected = append(sum.Rejected, err)
		dls = append(dls, journal.DeadLetter{Err: err, Source: msg.source(), Received: msg.Received, Raw: raw})
	}

	entries := in.decode(&msg, &sum, refuse)
	if msg.AllOrNothing && len(sum.Rejected) > 0 {
		entries = nil
	}
	if len(entries) > 0 {
		results := make([]journal.Result, len(entries))
		start := time.Now()
		err := retry(ctx, in.log, "append records", func() error {
			return in.j.Append(ctx, entries, journal.Meta{Source: msg.source(), Received: msg.Received}, results)
		})
		if err != nil {
			return sum, err
		}
		in.m.publish.Observe(time.Since(start).Seconds())
		for i, r := range results {
			switch r.Outcome {
			case journal.Stored:
				sum.Accepted++
			case journal.Duplicate:
				sum.Duplicates++
			case journal.Conflict:
				refuse(&record.Error{Reason: record.ReasonConflict, Field: "id", Index: -1,
					Detail: fmt.Sprintf("record %s was stored before (stream sequence %d) with different content; a record id may not be reused", entries[i].ID, r.Seq)},
					entries[i].Data)
			}
		}
		in.m.accepted(msg.Kind).Add(uint64(sum.Accepted))
		in.m.duplicates(msg.Kind).Add(uint64(sum.Duplicates))
	}
	if len(dls) > 0 {
		if err := retry(ctx, in.log, "store dead letters", func() error { return in.j.DeadLetter(ctx, dls) }); err != nil {
			return sum, err
		}
		for _, e := range sum.Rejected {
			in.m.rejected[e.Reason].Inc()
			in.reject.Info("record rejected", zap.String("source", msg.source()), zap.Stringer("reason", e.Reason),
				zap.String("field", e.Field), zap.Int("index", e.Index), zap.String("detail", e.Detail))
		}
	}
	return sum, nil
}

// decode validates the message and builds its journal entries; the
// canonical encodings share one buffer.
func (in *Ingester) decode(msg *Message, sum *Summary, refuse func(*record.Error, []byte)) []journal.Entry {
	if len(msg.Payload) > in.cfg.MaxPayload {
		refuse(&record.Error{Reason: record.ReasonOversize, Index: -1,
			Detail: fmt.Sprintf("payload is %d bytes, the limit is %d: split it into smaller batches", len(msg.Payload), in.cfg.MaxPayload)}, msg.Payload)
		return nil
	}
	if msg.Kind == 0 {
		kind, scope, err := ParseTopic(msg.Topic)
		if err != nil {
			refuse(err, msg.Payload)
			return nil
		}
		msg.Kind, msg.Scope = kind, scope
	}
	now := in.now()
	var (
		entries []journal.Entry
		buf     []byte
	)
	switch msg.Kind {
	case record.KindReading:
		if msg.Scope.Device != "" && in.limits.KnownDevice != nil && !in.limits.KnownDevice(msg.Scope.Device) {
			refuse(&record.Error{Reason: record.ReasonUnknownDevice, Field: "topic", Index: -1,
				Detail: fmt.Sprintf("device %q is not registered with this gateway: ask the operator to add it to ingest.devices", msg.Scope.Device)}, msg.Payload)
			return nil
		}
		recs, rejects, err := record.DecodeReadings(msg.Payload, msg.Scope, in.limits, now)
		if err != nil {
			refuse(err, msg.Payload)
			return nil
		}
		in.m.records(msg.Transport, record.KindReading).Add(uint64(len(recs) + len(rejects)))
		sum.Records = len(recs) + len(rejects)
		for _, rj := range rejects {
			refuse(rj.Err, rj.Raw)
		}
		entries = make([]journal.Entry, len(recs))
		buf = make([]byte, 0, len(recs)*160)
		for i := range recs {
			r := &recs[i]
			start := len(buf)
			buf = r.AppendCanonical(buf)
			entries[i] = journal.Entry{Kind: record.KindReading, ID: r.ID(), Subject: journal.SubjectReading(r.Shipment, r.Device),
				Data: buf[start:len(buf):len(buf)], Device: r.Device, Seq: r.Seq}
		}
	case record.KindHandover:
		recs, rejects, err := record.DecodeHandovers(msg.Payload, msg.Scope, in.limits, now)
		if err != nil {
			refuse(err, msg.Payload)
			return nil
		}
		in.m.records(msg.Transport, record.KindHandover).Add(uint64(len(recs) + len(rejects)))
		sum.Records = len(recs) + len(rejects)
		for _, rj := range rejects {
			refuse(rj.Err, rj.Raw)
		}
		entries = make([]journal.Entry, len(recs))
		for i := range recs {
			h := &recs[i]
			data := h.AppendCanonical(nil)
			entries[i] = journal.Entry{Kind: record.KindHandover, ID: h.ID, Subject: journal.SubjectHandover(h.Shipment), Data: data}
		}
	}
	return entries
}

// retry runs op until it succeeds or ctx ends, backing off from 50 ms to 5 s.
func retry(ctx context.Context, log *zap.Logger, what string, op func() error) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s: %w", ErrStopping, what, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("journal unavailable, retrying", zap.String("op", what), zap.Int("attempt", attempt), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %w", ErrStopping, what, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
