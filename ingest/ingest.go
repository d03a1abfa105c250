// Package ingest turns transport messages — MQTT publishes and HTTP bodies
// — into records on the journal. It validates every record, appends the
// good ones exactly once, dead-letters the bad ones with their original
// bytes and a reason, and returns only when all of that is durable, so the
// transport can acknowledge the sender.
//
// Ingest does all of that in one call. A transport that keeps several
// messages of one sender in flight splits it in two: Start, called in
// arrival order, validates the message and starts its append, so the
// journal keeps the arrival order; Ticket.Wait, called in the same order,
// returns once the message is durable, so the acknowledgements keep it too.
//
// Transports live in subpackages named after the system they talk to:
// ingest/mqtt (a paho subscriber on an external broker); the HTTP API (api)
// calls Ingest directly and the embedded broker (embedded/mqttbroker) calls
// Start and Wait.
package ingest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/semaphore"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// Journal is what ingest needs of the durable log.
type Journal interface {
	// AppendAsync starts appending entries and returns at once; appends
	// started one after another keep that order in the journal. out is
	// filled once the Appending's Wait returns nil.
	AppendAsync(entries []journal.Entry, meta journal.Meta, out []journal.Result) Appending
	// Append appends entries and returns once they are durable. It is
	// idempotent: ingest retries it whole after an error.
	Append(ctx context.Context, entries []journal.Entry, meta journal.Meta, out []journal.Result) error
	DeadLetter(ctx context.Context, dls []journal.DeadLetter) error
}

// Appending is an append under way (journal.Appending).
type Appending interface {
	// Wait returns once the append finished, with its error, or with
	// ctx's error when ctx ends first.
	Wait(ctx context.Context) error
}

// FromJournal adapts the journal to Journal. It is needed only because
// (*journal.Journal).AppendAsync returns the concrete *journal.Appending,
// and a Go method set does not let that stand in for one returning the
// Appending interface that test fakes implement.
func FromJournal(j *journal.Journal) Journal { return journalAdapter{j} }

type journalAdapter struct{ *journal.Journal }

func (a journalAdapter) AppendAsync(entries []journal.Entry, meta journal.Meta, out []journal.Result) Appending {
	return a.Journal.AppendAsync(entries, meta, out)
}

var (
	_ Journal   = journalAdapter{}
	_ Appending = (*journal.Appending)(nil)
)

// Config bounds what the gateway accepts and how much it works on at once.
type Config struct {
	// MaxPayload is the largest message or request body in bytes.
	MaxPayload int `yaml:"max_payload"`
	// MaxRecords is the largest batch array.
	MaxRecords int `yaml:"max_records"`
	// MaxFuture is how far ahead of the gateway clock a ts may be.
	MaxFuture time.Duration `yaml:"max_future"`
	// InFlight bounds messages being validated and journaled at once,
	// from Start until their Ticket's Wait returns; further messages wait,
	// which holds back the senders' acks. The embedded broker keeps many
	// messages of each connection in flight, so this is the sum of the
	// connections' windows (say 64 connections × 64 messages).
	InFlight int `yaml:"in_flight"`
	// InFlightBytes bounds the payload bytes of the messages in flight, so
	// many large batches cannot take the memory that many single readings
	// may: a message waits until its payload fits.
	InFlightBytes int `yaml:"in_flight_bytes"`
	// Devices, when not empty, is the list of devices allowed to send;
	// readings of any other device are rejected as unknown_device.
	Devices []string `yaml:"devices"`
	// Partitions is the cluster's partition count (cluster.partitions, set
	// by the gateway): with it, a reading's subject carries its
	// shipment's partition (journal.SubjectReadingIn).
	Partitions int `yaml:"-"`
}

// DefaultConfig returns the defaults the product documents.
func DefaultConfig() Config {
	return Config{MaxPayload: 4 << 20, MaxRecords: 10000, MaxFuture: 5 * time.Minute, InFlight: 4096, InFlightBytes: 256 << 20}
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
	case c.InFlightBytes < c.MaxPayload:
		return fmt.Errorf("ingest.in_flight_bytes: must be at least ingest.max_payload (%d), got %d", c.MaxPayload, c.InFlightBytes)
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
	// Org is the sender's org when it logged in; its dead letters carry it.
	Org string
	// Granted, when set, says which shipments the sender may write (an
	// API token's org's grants); records of any other are refused as
	// not_granted.
	Granted func(shipment string) bool
	// Refuse, when set, refuses the whole message for this reason before
	// anything is decoded: a transport that converts its input (EPCIS
	// capture) dead-letters the original bytes it could not convert.
	Refuse *record.Error
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
	bytes   *semaphore.Weighted
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
		sem:   make(chan struct{}, cfg.InFlight),
		bytes: semaphore.NewWeighted(int64(cfg.InFlightBytes)),
		m:     newIngestMetrics(reg),
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

// CheckSignatures makes the ingester check readings' Ed25519 signatures
// against key, which returns a device's registered public key or nil
// (record.Limits.DeviceKey). Call it before the first message.
func (in *Ingester) CheckSignatures(key func(device string) ed25519.PublicKey) {
	in.limits.DeviceKey = key
}

// RequireRegistered makes the ingester refuse, as unknown_device, readings
// of a device for which registered is false (devices.unknown: reject),
// on top of the ingest.devices list when one is set. Call it before the
// first message.
func (in *Ingester) RequireRegistered(registered func(device string) bool) {
	listed := in.limits.KnownDevice
	if listed == nil {
		in.limits.KnownDevice = registered
		in.limits.UnknownDeviceHint = "register it in the device registry (coldchain devices register ID --serial S, or POST /v1/devices)"
		return
	}
	in.limits.KnownDevice = func(d string) bool { return listed(d) && registered(d) }
	in.limits.UnknownDeviceHint = "it must be both in ingest.devices and in the device registry (coldchain devices register ID --serial S)"
}

// ParseTopic maps an MQTT topic to the record kind and scope it carries:
// coldchain/v1/{shipment}/{device}/readings or coldchain/v1/{shipment}/handovers.
func ParseTopic(topic string) (record.Kind, record.Scope, *record.Error) {
	// Every message passes here: no allocation unless the topic is wrong.
	rest, ok := strings.CutPrefix(topic, "coldchain/v1/")
	if !ok {
		return 0, record.Scope{}, unknownTopic(topic)
	}
	ship, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, record.Scope{}, unknownTopic(topic)
	}
	var (
		kind  record.Kind
		scope record.Scope
	)
	if rest == "handovers" {
		kind, scope = record.KindHandover, record.Scope{Shipment: ship}
	} else if dev, tail, ok := strings.Cut(rest, "/"); ok && tail == "readings" {
		kind, scope = record.KindReading, record.Scope{Shipment: ship, Device: dev}
	} else {
		return 0, record.Scope{}, unknownTopic(topic)
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

func unknownTopic(topic string) *record.Error {
	return &record.Error{Reason: record.ReasonUnknownTopic, Index: -1,
		Detail: fmt.Sprintf("topic %q is not an ingest topic: publish readings to coldchain/v1/{shipment}/{device}/readings and handovers to coldchain/v1/{shipment}/handovers", topic)}
}

// Ingest validates msg, appends its good records exactly once and
// dead-letters the rest. It returns nil once every record of the message is
// durable somewhere (stored, known as a duplicate, or dead-lettered): the
// transport may then acknowledge the sender. Transient journal failures are
// retried with backoff until ctx ends; then it returns an error wrapping
// ErrStopping and the transport must not acknowledge. It is Start, then
// the ticket's Wait.
func (in *Ingester) Ingest(ctx context.Context, msg Message) (Summary, error) {
	t, err := in.Start(ctx, msg)
	if err != nil {
		return Summary{}, err
	}
	return t.Wait(ctx)
}

// Ticket is a message Start took on: its records are being appended. Its
// Wait must be called to finish the message and give back its in-flight
// slot, whatever the transport then does with the message.
type Ticket struct {
	in      *Ingester
	msg     Message
	sum     Summary
	dls     []journal.DeadLetter
	entries []journal.Entry
	meta    journal.Meta
	results []journal.Result
	app     Appending // nil when there is nothing to append
	start   time.Time // when the append started

	weight int64 // of the in-flight bytes
	waited bool
	err    error
}

// Start takes msg on in the caller: it waits for an in-flight slot (the
// backpressure of in_flight; when ctx ends first it returns an error
// wrapping ErrStopping), validates msg and starts appending its good
// records. Messages started one after another keep that order in the
// journal, so a transport calls Start in arrival order, and then Wait on
// the tickets in the same order to acknowledge in arrival order.
func (in *Ingester) Start(ctx context.Context, msg Message) (*Ticket, error) {
	select {
	case in.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrStopping, ctx.Err())
	}
	weight := int64(max(1, min(len(msg.Payload), in.cfg.InFlightBytes)))
	if err := in.bytes.Acquire(ctx, weight); err != nil {
		<-in.sem
		return nil, fmt.Errorf("%w: %w", ErrStopping, err)
	}
	in.m.inFlight.Add(1)
	in.m.messages(msg.Transport).Inc()

	t := &Ticket{in: in, msg: msg, weight: weight}
	t.entries = in.decode(&t.msg, &t.sum, t.refuse)
	if t.msg.AllOrNothing && len(t.sum.Rejected) > 0 {
		t.entries = nil
	}
	if len(t.entries) > 0 {
		t.results = make([]journal.Result, len(t.entries))
		t.meta = journal.Meta{Source: t.msg.source(), Received: t.msg.Received}
		t.start = time.Now()
		t.app = in.j.AppendAsync(t.entries, t.meta, t.results)
	}
	return t, nil
}

// refuse records a rejected record (or message) and its dead letter.
func (t *Ticket) refuse(err *record.Error, raw []byte) {
	t.sum.Rejected = append(t.sum.Rejected, err)
	t.dls = append(t.dls, journal.DeadLetter{Err: err, Source: t.msg.source(), Org: t.msg.Org, Received: t.msg.Received, Raw: raw})
}

// Wait returns once every record of the message is durable somewhere, as
// Ingest does, and frees the message's in-flight slot whatever the
// outcome. A failed append is retried whole (it is idempotent) until ctx
// ends; then Wait returns an error wrapping ErrStopping and the transport
// must not acknowledge the message. Wait is not safe for concurrent use;
// a second call returns what the first returned.
func (t *Ticket) Wait(ctx context.Context) (Summary, error) {
	if t.waited {
		return t.sum, t.err
	}
	t.waited = true
	t.err = t.finish(ctx)
	t.in.m.inFlight.Add(-1)
	t.in.bytes.Release(t.weight)
	<-t.in.sem
	return t.sum, t.err
}

func (t *Ticket) finish(ctx context.Context) error {
	in := t.in
	if t.app != nil {
		// The first attempt is the append Start began; should it fail,
		// the retries append synchronously. A retry can land after
		// appends started later, the one case where the journal order
		// differs from the arrival order.
		started := true
		err := retry(ctx, in.log, "append records", func() error {
			if started {
				started = false
				return t.app.Wait(ctx)
			}
			return in.j.Append(ctx, t.entries, t.meta, t.results)
		})
		if err != nil {
			return err
		}
		in.m.publish.Observe(time.Since(t.start).Seconds())
		for i, r := range t.results {
			switch r.Outcome {
			case journal.Stored:
				t.sum.Accepted++
			case journal.Duplicate:
				t.sum.Duplicates++
			case journal.Conflict:
				t.refuse(&record.Error{Reason: record.ReasonConflict, Field: "id", Index: -1,
					Detail: fmt.Sprintf("record %s was stored before (journal position %d) with different content; a record id may not be reused", t.entries[i].ID, r.Seq)},
					t.entries[i].Data)
			}
		}
		in.m.accepted(t.msg.Kind).Add(uint64(t.sum.Accepted))
		in.m.duplicates(t.msg.Kind).Add(uint64(t.sum.Duplicates))
	}
	if len(t.dls) > 0 {
		if err := retry(ctx, in.log, "store dead letters", func() error { return in.j.DeadLetter(ctx, t.dls) }); err != nil {
			return err
		}
		for _, e := range t.sum.Rejected {
			in.m.rejected[e.Reason].Inc()
			in.reject.Info("record rejected", zap.String("source", t.msg.source()), zap.Stringer("reason", e.Reason),
				zap.String("field", e.Field), zap.Int("index", e.Index), zap.String("detail", e.Detail))
		}
	}
	return nil
}

// decode validates the message and builds its journal entries; the
// canonical encodings share one buffer.
func (in *Ingester) decode(msg *Message, sum *Summary, refuse func(*record.Error, []byte)) []journal.Entry {
	if msg.Refuse != nil {
		refuse(msg.Refuse, msg.Payload)
		return nil
	}
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
				Detail: "device " + in.limits.UnknownDeviceDetail(msg.Scope.Device)}, msg.Payload)
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
		if !granted(msg, len(recs), func(i int) string { return recs[i].Shipment }, refuse) {
			return nil
		}
		entries = make([]journal.Entry, 0, len(recs))
		buf = make([]byte, 0, len(recs)*160)
		for i := range recs {
			r := &recs[i]
			start := len(buf)
			buf = r.AppendCanonical(buf)
			entries = append(entries, journal.Entry{Kind: record.KindReading, ID: r.ID(), Subject: journal.SubjectReadingIn(r.Shipment, r.Device, in.cfg.Partitions),
				Data: buf[start:len(buf):len(buf)], Device: r.Device, Seq: r.Seq})
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
		if !granted(msg, len(recs), func(i int) string { return recs[i].Shipment }, refuse) {
			return nil
		}
		entries = make([]journal.Entry, 0, len(recs))
		for i := range recs {
			h := &recs[i]
			data := h.AppendCanonical(nil)
			entries = append(entries, journal.Entry{Kind: record.KindHandover, ID: h.ID, Subject: journal.SubjectHandover(h.Shipment), Data: data})
		}
	}
	return entries
}

// granted reports whether msg's sender may write the shipments of all n
// records; when not, the whole message is refused once, naming the first
// shipment it may not write.
func granted(msg *Message, n int, shipment func(int) string, refuse func(*record.Error, []byte)) bool {
	if msg.Granted == nil {
		return true
	}
	for i := range n {
		if sh := shipment(i); !msg.Granted(sh) {
			refuse(&record.Error{Reason: record.ReasonNotGranted, Field: "shipment", Index: -1,
				Detail: fmt.Sprintf("shipment %q is not granted to your org: nothing of this message was stored; ask the gateway's operator to grant it (coldchain shipments grant %s --org ORG)", sh, sh)}, msg.Payload)
			return false
		}
	}
	return true
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
		switch {
		case attempt != 1 && attempt%10 != 0:
		case errors.Is(err, journal.ErrFull):
			log.Error("journal full: records are not acknowledged until nats.max_bytes is raised or space is freed; retrying",
				zap.String("op", what), zap.Int("attempt", attempt), zap.Error(err))
		default:
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
