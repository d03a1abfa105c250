// Package journal is the gateway's durable log on NATS JetStream: the
// source of truth every other part reads. It defines the streams and
// subjects, appends records exactly once (docs/EXACTLY-ONCE.md), and keeps
// the dead letters.
package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/record"
)

// Stream names. They are fixed so every gateway of a cluster finds the same
// streams.
const (
	StreamReadings    = "COLDCHAIN_READINGS"
	StreamHandovers   = "COLDCHAIN_HANDOVERS"
	StreamAlerts      = "COLDCHAIN_ALERTS"
	StreamDevices     = "COLDCHAIN_DEVICES"
	StreamDeadLetters = "COLDCHAIN_DEADLETTERS"
)

// Message headers the gateway sets beside the JetStream ones.
const (
	HeaderMsgID     = "Nats-Msg-Id"         // JetStream's message id: the record id
	HeaderReceived  = "Coldchain-Received"  // gateway clock at receipt, RFC 3339
	HeaderSource    = "Coldchain-Source"    // "mqtt:<topic>" or "http:<path>"
	HeaderOrg       = "Coldchain-Org"       // dead letters: the sender's org, when it logged in
	HeaderReason    = "Coldchain-Reason"    // dead letters: the reason token
	HeaderField     = "Coldchain-Field"     // dead letters: the offending member
	HeaderIndex     = "Coldchain-Index"     // dead letters: position in the batch
	HeaderDetail    = "Coldchain-Detail"    // dead letters: the sentence for a person
	HeaderTruncated = "Coldchain-Truncated" // dead letters: original size when cut
	HeaderPart      = "Coldchain-Part"      // "k/n": the k-th (from 1) of n chunks committed together
)

// SubjectReading returns the subject of a device's readings.
func SubjectReading(shipment, device string) string {
	return "coldchain.readings." + shipment + "." + device
}

// SubjectHandover returns the subject of a shipment's handovers.
func SubjectHandover(shipment string) string { return "coldchain.handovers." + shipment }

// SubjectAlert returns the subject of a shipment's alert events.
func SubjectAlert(shipment string) string { return "coldchain.alerts." + shipment }

// SubjectDevice returns the subject of a device's registry records in a
// shipment's log.
func SubjectDevice(shipment, device string) string {
	return "coldchain.devices." + shipment + "." + device
}

// SubjectDeadLetter returns the subject of dead letters of one reason.
func SubjectDeadLetter(r record.Reason) string { return "coldchain.deadletters." + r.String() }

// Config is the JetStream part of the gateway configuration.
type Config struct {
	// Replicas is the number of copies of every stream: 1 on a single
	// server, 3 on a cluster.
	Replicas int `yaml:"replicas"`
	// DuplicateWindow is how long JetStream itself remembers message ids:
	// it deduplicates alerts and dead letters. Records are deduplicated by
	// the lanes and the dedup index (docs/EXACTLY-ONCE.md), and /readyz
	// fails when the index is half this far behind.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Retention is how long records are kept; 0 keeps them forever. Proofs
	// need the records, so keep them at least as long as a shipment can
	// be audited.
	Retention time.Duration `yaml:"retention"`
	// DeadLetterRetention is how long dead letters are kept.
	DeadLetterRetention time.Duration `yaml:"dead_letter_retention"`
	// MaxBytes bounds each record stream (readings, handovers, alerts,
	// device records) on disk, per replica; 0, no bound but the disk. A
	// full stream refuses new records rather than dropping old ones
	// (JetStream's discard-new policy): ingest stops acknowledging, HTTP
	// answers 503 with ErrFull's reason, /readyz fails, until the bound is
	// raised or space is freed. Nothing stored is ever removed to make
	// room. Dead letters are bounded by dead_letter_retention only.
	MaxBytes int64 `yaml:"max_bytes"`
}

// MinMaxBytes is the smallest MaxBytes accepted: room for a few chunks.
const MinMaxBytes = 1 << 20

// ErrFull is returned by appends that a record stream refused because it
// reached nats.max_bytes. Nothing of the refused message is stored.
var ErrFull = errors.New("journal full: the stream reached nats.max_bytes; nothing was stored (raise nats.max_bytes or free space)")

// DefaultConfig returns the single-server defaults.
func DefaultConfig() Config {
	return Config{
		Replicas:            1,
		DuplicateWindow:     10 * time.Minute,
		DeadLetterRetention: 30 * 24 * time.Hour,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("nats.replicas: must be 1 to 5, got %d", c.Replicas)
	case c.DuplicateWindow < time.Second:
		return fmt.Errorf("nats.duplicate_window: must be at least 1s, got %s", c.DuplicateWindow)
	case c.Retention < 0:
		return fmt.Errorf("nats.retention: must not be negative")
	case c.Retention > 0 && c.Retention < c.DuplicateWindow:
		return fmt.Errorf("nats.retention: must be longer than nats.duplicate_window")
	case c.DeadLetterRetention < 0:
		return fmt.Errorf("nats.dead_letter_retention: must not be negative")
	case c.MaxBytes < 0 || c.MaxBytes > 0 && c.MaxBytes < MinMaxBytes:
		return fmt.Errorf("nats.max_bytes: must be 0 (no bound) or at least %d bytes (1 MiB), got %d", MinMaxBytes, c.MaxBytes)
	}
	return nil
}

// Journal appends records and dead letters to JetStream.
type Journal struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	streams map[record.Kind]jetstream.Stream
	dead    jetstream.Stream
	idx     *index
	log     *zap.Logger
	// maxChunk is the most bytes of records one chunk carries.
	maxChunk int

	// ctx ends at Close; lanes commit under it.
	ctx     context.Context
	stop    context.CancelFunc
	lanesMu sync.Mutex
	lanes   map[laneKey]*lane
	lanesWG sync.WaitGroup
	// conflicts counts appends JetStream refused because another writer
	// had appended to the subject since the lane last knew it.
	conflicts atomic.Uint64
	// positionIDs gives every chunk a Nats-Msg-Id naming its place, for
	// servers whose clustered streams do not serialise the per-subject
	// check (guardsSubjectRace).
	positionIDs bool
}

// fixedSubjectRace is the first nats-server release whose clustered
// streams serialise concurrent publishes with the same
// Nats-Expected-Last-Subject-Sequence (nats-server#4319). Before it, two
// gateways appending the same device's readings at once can both be
// accepted, and the readings are stored twice.
var fixedSubjectRace = [3]int{2, 9, 21}

// guardsSubjectRace reports whether a journal on a server of version
// version (as the server reports it, "2.9.10") with replicas replicas must
// guard its per-subject check with position ids. A version it cannot read
// is guarded: the cost is dedup memory, the alternative doubled records.
func guardsSubjectRace(version string, replicas int) bool {
	if replicas <= 1 {
		return false // a single server checks and stores under one lock
	}
	var v [3]int
	core, _, _ := strings.Cut(version, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return true
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return true
		}
		v[i] = n
	}
	for i := range v {
		if v[i] != fixedSubjectRace[i] {
			return v[i] < fixedSubjectRace[i]
		}
	}
	return false
}

// positionID is the Nats-Msg-Id of the chunk that follows tail on subject.
// Only one chunk can: a second writer that passed the per-subject check
// with the same tail carries the same id, and JetStream's deduplication,
// which stages an id before the message is stored, refuses it.
func positionID(subject string, tail uint64) string {
	return subject + "@" + strconv.FormatUint(tail, 10)
}

// Conflicts returns how many appends found their subject changed by
// another writer (another gateway of a cluster) and were decided again.
// Each costs a round trip to JetStream and a wait for the dedup index.
func (j *Journal) Conflicts() uint64 { return j.conflicts.Load() }

// publishAckTimeout is how long an asynchronous publish (alerts, device
// records, dead letters) waits for JetStream's acknowledgement.
const publishAckTimeout = 10 * time.Second

// maxChunkBytes bounds a chunk whatever the server's max_payload, so a
// consumer's buffer of fetched chunks stays small.
const maxChunkBytes = 1 << 20

// ErrClosed is returned by a journal whose connection is closed.
var ErrClosed = errors.New("journal closed")

// Open creates or updates the streams idempotently, so every gateway start
// converges on the configured layout, opens the dedup index under dir, and
// returns a journal that appends through nc. It does not start the
// indexer: see Run. Close it after every user stopped.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, dir string, log *zap.Logger) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// An asynchronous publish whose acknowledgement is lost (its server
	// went away with it) would otherwise wait for ever, and with it the
	// detector publishing an alert: it fails instead, and is sent again
	// with the same message id, which JetStream deduplicates.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	j := &Journal{cfg: cfg, nc: nc, js: js, streams: map[record.Kind]jetstream.Stream{}, log: log,
		lanes: map[laneKey]*lane{}}
	// Room for the headers, within the server's limit.
	j.maxChunk = min(int(nc.MaxPayload())-16<<10, maxChunkBytes)
	if j.maxChunk < 48<<10 {
		return nil, fmt.Errorf("nats: the server's max_payload (%d bytes) is too small; it must be at least 64 KiB", nc.MaxPayload())
	}
	if j.positionIDs = guardsSubjectRace(nc.ConnectedServerVersion(), cfg.Replicas); j.positionIDs {
		log.Warn("this nats-server's clustered streams may accept two appends to one subject at once (nats-server#4319, fixed in 2.9.21): "+
			"each chunk also carries a message id naming its place, so that JetStream's deduplication refuses the second; "+
			"upgrade the servers to 2.9.21 or later to save the deduplication memory that costs",
			zap.String("server_version", nc.ConnectedServerVersion()), zap.Int("replicas", cfg.Replicas))
	}
	for _, sc := range j.streamConfigs() {
		s, err := js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
		switch sc.Name {
		case StreamReadings:
			j.streams[record.KindReading] = s
		case StreamHandovers:
			j.streams[record.KindHandover] = s
		case StreamAlerts:
			j.streams[record.KindAlert] = s
		case StreamDevices:
			j.streams[record.KindDevice] = s
		case StreamDeadLetters:
			j.dead = s
		}
		log.Debug("stream ready", zap.String("stream", sc.Name))
	}
	if j.idx, err = openIndex(ctx, dir, j.streams, log); err != nil {
		return nil, err
	}
	j.ctx, j.stop = context.WithCancel(context.Background())
	j.lanesWG.Add(1)
	go func() {
		defer j.lanesWG.Done()
		j.sweep(j.ctx, 2*time.Second, laneIdle)
	}()
	return j, nil
}

func (j *Journal) streamConfigs() []jetstream.StreamConfig {
	base := func(name, desc, subject string, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: desc, Subjects: []string{subject},
			Storage: jetstream.FileStorage, Replicas: j.cfg.Replicas, MaxAge: maxAge,
			Duplicates: j.cfg.DuplicateWindow, Discard: jetstream.DiscardOld, AllowDirect: true,
		}
	}
	// A record stream with a size bound refuses what does not fit:
	// discarding old records would lose evidence nobody may have stored,
	// logged or anchored yet.
	bounded := func(sc jetstream.StreamConfig) jetstream.StreamConfig {
		if j.cfg.MaxBytes > 0 {
			sc.MaxBytes, sc.Discard = j.cfg.MaxBytes, jetstream.DiscardNew
		} else {
			sc.MaxBytes = -1
		}
		return sc
	}
	return []jetstream.StreamConfig{
		bounded(base(StreamReadings, "coldchain sensor readings, canonical encoding", "coldchain.readings.>", j.cfg.Retention)),
		bounded(base(StreamHandovers, "coldchain custody handovers, canonical encoding", "coldchain.handovers.>", j.cfg.Retention)),
		bounded(base(StreamAlerts, "coldchain excursion alert events", "coldchain.alerts.>", j.cfg.Retention)),
		bounded(base(StreamDevices, "coldchain device registry records in shipment logs", "coldchain.devices.>", j.cfg.Retention)),
		base(StreamDeadLetters, "coldchain rejected input with its original bytes", "coldchain.deadletters.>", j.cfg.DeadLetterRetention),
	}
}

// Close stops the lanes, failing the appends still queued, and closes the
// dedup index. Call it after the transports and the indexer stopped.
func (j *Journal) Close() error {
	j.stop()
	j.lanesWG.Wait()
	return j.idx.close()
}

// JetStream returns the JetStream context, for parts that consume streams.
func (j *Journal) JetStream() jetstream.JetStream { return j.js }

// Ready reports whether the connection is up, the streams answer and
// none is full: a record stream within one chunk of nats.max_bytes takes
// no more messages, so the gateway is not ready for them.
func (j *Journal) Ready(ctx context.Context) error {
	if !j.nc.IsConnected() {
		return fmt.Errorf("nats: %s", j.nc.Status())
	}
	for _, s := range j.streams {
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.CachedInfo().Config.Name, err)
		}
		if max := info.Config.MaxBytes; max > 0 && int64(info.State.Bytes)+int64(j.maxChunk) > max {
			return fmt.Errorf("stream %s is full: %d of nats.max_bytes %d bytes used; new records are refused until it is raised or space is freed",
				info.Config.Name, info.State.Bytes, max)
		}
	}
	return nil
}

// Usage returns each record stream's bytes on disk and its bound (0: none).
func (j *Journal) Usage(ctx context.Context) (map[string][2]int64, error) {
	out := make(map[string][2]int64, len(j.streams))
	for _, s := range j.streams {
		info, err := s.Info(ctx)
		if err != nil {
			return nil, err
		}
		out[info.Config.Name] = [2]int64{int64(info.State.Bytes), max(0, info.Config.MaxBytes)}
	}
	return out, nil
}
