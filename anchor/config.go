package anchor

import (
	"fmt"
	"time"
)

// Config is the anchorer's part of the gateway configuration (key anchor).
type Config struct {
	// Epoch is how often the roots of the shipments that grew are anchored
	// (COLDCHAIN_ANCHOR_EPOCH). An epoch is cut only once the previous one
	// is in a block, so a slow chain makes epochs longer, never more
	// numerous.
	Epoch time.Duration `yaml:"epoch"`
	// EarlyRecords cuts an epoch before Epoch has passed once this many
	// records are logged but not yet in an epoch.
	EarlyRecords int `yaml:"early_records"`
	// Poll is how often the chain is asked where unfinished anchors stand,
	// and how often a failed submission is retried. Zero, the default,
	// derives it from Epoch: min(5s, Epoch/2) (see PollInterval), so
	// shortening the epoch alone is enough.
	Poll time.Duration `yaml:"poll"`
	// Batch is the largest journal batch appended to the logs at once; a
	// batch is one synced write.
	Batch int `yaml:"batch"`
	// BatchWait is how long a batch stays open for more records once it
	// has one: fewer, larger synced writes under a steady trickle.
	BatchWait time.Duration `yaml:"batch_wait"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Epoch: 10 * time.Minute, EarlyRecords: 100_000, Batch: 1000, BatchWait: 200 * time.Millisecond}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Epoch < time.Second:
		return fmt.Errorf("anchor.epoch: must be at least 1s, got %s", c.Epoch)
	case c.EarlyRecords < 1:
		return fmt.Errorf("anchor.early_records: must be at least 1, got %d", c.EarlyRecords)
	case c.Poll < 0 || (c.Poll > 0 && c.Poll < 10*time.Millisecond):
		return fmt.Errorf("anchor.poll: must be at least 10ms (or 0 for min(5s, anchor.epoch/2)), got %s", c.Poll)
	case c.Poll > c.Epoch:
		return fmt.Errorf("anchor.poll: must not exceed anchor.epoch (%s), got %s: shorten anchor.poll, or leave it unset to derive it from the epoch", c.Epoch, c.Poll)
	case c.Batch < 1 || c.Batch > 10_000:
		return fmt.Errorf("anchor.batch: must be 1 to 10000, got %d", c.Batch)
	case c.BatchWait < 0 || c.BatchWait > c.Epoch:
		return fmt.Errorf("anchor.batch_wait: must be 0 to anchor.epoch (%s), got %s", c.Epoch, c.BatchWait)
	}
	return nil
}

// defaultPoll is the longest derived poll interval.
const defaultPoll = 5 * time.Second

// PollInterval returns Poll when it was set, else min(5s, Epoch/2).
func (c Config) PollInterval() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return min(defaultPoll, c.Epoch/2)
}
