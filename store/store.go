// Package store is the gateway's time-series history: a projection of the
// journal into a store that answers range and downsampling queries fast.
//
// The domain is here: the Store interface every adapter implements, the
// query and result types, the errors, and the Writer, the durable journal
// consumer that feeds a store. The adapters are subpackages named after the
// system they talk to: store/pebble (embedded, the default) and
// store/influx (InfluxDB 2.x, or 1.8+ through its v2 API). store/storetest
// is the conformance suite both pass. docs/STORE.md draws the layers.
//
// Like the dedup index, a store holds nothing the journal does not: it can
// be dropped and rebuilt by deleting the writer's consumer.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Batch is what one write stores: readings and handovers in journal order.
type Batch struct {
	Readings []record.Reading
	// ReadingsCanonical, when set, holds the canonical encoding of each
	// reading, index for index: the writer has it from the journal, and a
	// store that keeps it need not encode it again.
	ReadingsCanonical [][]byte
	Handovers         []record.Handover
}

// Len returns the number of points in the batch.
func (b Batch) Len() int { return len(b.Readings) + len(b.Handovers) }

// BatchWriter stores batches. Write is idempotent: a record written twice
// is stored once, so a batch redelivered after a crash may be written again.
// Its error is a *WriteError when the store answered, which tells the writer
// whether to retry or to dead-letter.
type BatchWriter interface {
	Write(ctx context.Context, b Batch) error
}

// Reader answers the history queries. Every store gives the same answers
// for the same records (store/storetest checks it).
type Reader interface {
	// Shipments lists every shipment with a reading or a handover, by id.
	Shipments(ctx context.Context) ([]Shipment, error)
	// Shipment returns one shipment's summary, or ErrUnknownShipment.
	Shipment(ctx context.Context, id string) (Shipment, error)
	// Readings returns up to q.Limit raw readings of q's shipment and time
	// range in device-time order, ties broken by device then seq.
	Readings(ctx context.Context, q Query) ([]record.Reading, error)
	// Downsample returns one Bucket per interval of length every that holds
	// readings, in time order; intervals are aligned on the Unix epoch
	// (a bucket of 1h starts on the hour) and q.Limit is ignored.
	Downsample(ctx context.Context, q Query, every time.Duration) ([]Bucket, error)
	// Handovers returns a shipment's handovers in time order, ties broken
	// by id: its custody chain.
	Handovers(ctx context.Context, shipment string) ([]record.Handover, error)
}

// Store is a time-series store of readings and handovers.
type Store interface {
	BatchWriter
	Reader
	// Ping reports whether the store answers now.
	Ping(ctx context.Context) error
	// Name is the kind of store, for logs and metrics: "embedded" or "influx".
	Name() string
	Close() error
}

// Pruner is a store that deletes what retention has aged out itself.
// InfluxDB does that with the bucket's retention period instead.
type Pruner interface {
	// Prune deletes every reading and handover older than before.
	Prune(ctx context.Context, before time.Time) error
}

// Options are the settings every store takes beside its own connection
// settings.
type Options struct {
	// Retention is how long readings and handovers are kept, by device
	// time; 0 keeps them forever. Queries never return older points, so
	// every store gives the same answers whether it has pruned yet or not.
	Retention time.Duration
	// Now is the clock retention is measured against; time.Now when nil.
	Now func() time.Time
}

// Cutoff returns the oldest device time still kept, or the zero time when
// everything is kept.
func (o Options) Cutoff() time.Time {
	if o.Retention <= 0 {
		return time.Time{}
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	return now().Add(-o.Retention)
}

// Query selects readings of one shipment.
type Query struct {
	Shipment string
	// From and To bound device time, half-open: [From, To). A zero From or
	// To leaves that side open.
	From, To time.Time
	// Device, if set, selects one device.
	Device string
	// Limit is the most readings returned; it must be positive.
	Limit int
}

// Clamp narrows q to what retention keeps: From is raised to cutoff.
func (q Query) Clamp(cutoff time.Time) Query {
	if !cutoff.IsZero() && q.From.Before(cutoff) {
		q.From = cutoff
	}
	return q
}

// Contains reports whether device time t is in q's range.
func (q Query) Contains(t time.Time) bool {
	return (q.From.IsZero() || !t.Before(q.From)) && (q.To.IsZero() || t.Before(q.To))
}

// Bucket is one downsampling interval [Start, Start+every) of temp_c, in °C.
type Bucket struct {
	Start time.Time
	Min   float64
	Max   float64
	Mean  float64
	Count int64
}

// Shipment summarises what a store holds about one shipment.
type Shipment struct {
	ID string
	// FirstReading and LastReading are the earliest and latest device
	// times of its readings; zero without readings.
	FirstReading, LastReading time.Time
	// Devices is how many devices sent readings.
	Devices int
	// LastTempC is temp_c of the latest reading (°C), set with LastReading;
	// LastDevice sent it. Ties in time go to the greater device, then seq.
	LastTempC  float64
	LastDevice string
	// Handovers is how many custody handovers it has.
	Handovers int
}

// Merge folds o, a summary of another part of the same shipment (another
// device, or its handovers), into s.
func (s *Shipment) Merge(o Shipment) {
	if s.ID == "" {
		s.ID = o.ID
	}
	if !o.FirstReading.IsZero() && (s.FirstReading.IsZero() || o.FirstReading.Before(s.FirstReading)) {
		s.FirstReading = o.FirstReading
	}
	if !o.LastReading.IsZero() && (s.LastReading.IsZero() || o.LastReading.After(s.LastReading) ||
		o.LastReading.Equal(s.LastReading) && o.LastDevice > s.LastDevice) {
		s.LastReading, s.LastTempC, s.LastDevice = o.LastReading, o.LastTempC, o.LastDevice
	}
	s.Devices += o.Devices
	s.Handovers += o.Handovers
}

// ErrUnknownShipment is returned for a shipment the store holds nothing
// about (or nothing retention still keeps).
var ErrUnknownShipment = errors.New("unknown shipment")

// ErrClosed is returned by a store after Close.
var ErrClosed = errors.New("store closed")

// WriteError is a write the store answered with an error, with the
// decision it calls for.
type WriteError struct {
	// Permanent says the store refused the points themselves (InfluxDB
	// answers 400, 413 or 422): writing them again fails the same way. A
	// batch with a refused point is split to find it; the point alone is
	// dead-lettered. Any other error is transient and retried.
	Permanent bool
	// Status is the HTTP status, 0 without an answer (connection refused,
	// timeout).
	Status int
	// RetryAfter is the delay the store asked for (429, 503), or 0.
	RetryAfter time.Duration
	Err        error
}

func (e *WriteError) Error() string {
	s := "write"
	if e.Status != 0 {
		s += " (status " + strconv.Itoa(e.Status) + ")"
	}
	if e.RetryAfter > 0 {
		s += " (retry after " + e.RetryAfter.String() + ")"
	}
	return fmt.Sprintf("%s: %v", s, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a WriteError the store will answer the
// same way again.
func IsPermanent(err error) bool {
	var we *WriteError
	return errors.As(err, &we) && we.Permanent
}
