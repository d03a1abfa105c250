package store

import (
	"fmt"
	"time"
)

// Store kinds.
const (
	KindEmbedded = "embedded"
	KindInflux   = "influx"
)

// Config is the store part of the gateway configuration: which store, and
// how the writer feeds it. The adapters own their connection settings.
type Config struct {
	// Kind is embedded (Pebble under <data_dir>/store, the default) or
	// influx.
	Kind string `yaml:"kind"`
	// BatchSize is the most records the writer takes from the journal and
	// writes at once.
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long a batch stays open for more records once it
	// has one: each write is synced, so under a steady trickle fewer,
	// larger writes cost much less. It is how far history may trail ingest.
	BatchWait time.Duration `yaml:"batch_wait"`
	// Retention is how long history is kept, by device time; 0 keeps it
	// forever. On InfluxDB, set the bucket's retention period to at least
	// this: the gateway filters queries but does not delete.
	Retention time.Duration `yaml:"retention"`
	// MaxBackoff bounds the wait between retries of a failed write.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// PruneInterval is how often the embedded store deletes what retention
	// has aged out.
	PruneInterval time.Duration `yaml:"prune_interval"`
}

// DefaultConfig returns the defaults: embedded, batches of 1,000, kept
// forever.
func DefaultConfig() Config {
	return Config{Kind: KindEmbedded, BatchSize: 1000, BatchWait: 100 * time.Millisecond, MaxBackoff: 30 * time.Second, PruneInterval: time.Hour}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Kind != KindEmbedded && c.Kind != KindInflux:
		return fmt.Errorf("store.kind: must be embedded or influx, got %q", c.Kind)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("store.batch_size: must be 1 to 10000, got %d", c.BatchSize)
	case c.BatchWait < 0 || c.BatchWait > 10*time.Second:
		return fmt.Errorf("store.batch_wait: must be 0 to 10s, got %s", c.BatchWait)
	case c.Retention < 0:
		return fmt.Errorf("store.retention: must not be negative")
	case c.Retention > 0 && c.Retention < time.Hour:
		return fmt.Errorf("store.retention: must be at least 1h (or 0 to keep forever), got %s", c.Retention)
	case c.MaxBackoff < 100*time.Millisecond:
		return fmt.Errorf("store.max_backoff: must be at least 100ms, got %s", c.MaxBackoff)
	case c.PruneInterval < time.Minute:
		return fmt.Errorf("store.prune_interval: must be at least 1m, got %s", c.PruneInterval)
	}
	return nil
}
