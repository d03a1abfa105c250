package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/coldchain/coldchain/journal"
)

// Config turns cluster mode on: several gateways on one NATS cluster,
// ingesting side by side, the consumer side (store writer, detector,
// anchorer) each on one gateway at a time under a lease.
type Config struct {
	// Enabled turns cluster mode on; it needs an external NATS (nats.url).
	Enabled bool `yaml:"enabled"`
	// Member names this gateway in the cluster (default: the host name);
	// every gateway needs its own.
	Member string `yaml:"member"`
	// AdvertiseURL is where other members reach this gateway's HTTP API
	// (default http://<http.listen>): a member that does not hold a part's
	// lease forwards that part's requests to the holder there.
	AdvertiseURL string `yaml:"advertise_url"`
	// LeaseTTL is how long a lease outlives its holder's last renewal
	// (10s): a dead holder's part moves to another gateway after this
	// long.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Standby is how often a member that does not anchor replays the new
	// steps of the anchor's step log (5s), so that taking anchoring over
	// replays only the last few; 0 replays only on takeover, which then
	// replays everything since this member last anchored.
	Standby time.Duration `yaml:"standby"`
	// LogSnapshots is how often the anchorer stores a snapshot of the
	// shipment logs in the cluster's object store (10m), when a step was
	// made since the last: a member without logs (new, or its data dir
	// lost) restores the latest and replays only the steps after it. 0
	// turns snapshots off: such a member replays the whole step log.
	LogSnapshots time.Duration `yaml:"log_snapshots"`
	// Partitions, when set, splits the store writer's and the detector's
	// work on readings by shipment into this many partitions, each run by
	// one member at a time under its own lease and spread over the live
	// members (0: the holder of the consumers lease does it all). It is
	// fixed for the cluster: the first member records it and a member
	// with another count does not start (docs/CLUSTER.md).
	Partitions int `yaml:"partitions"`
}

// DefaultConfig is cluster mode off, with a 10 s lease, a 5 s standby and
// a shipment-log snapshot every 10 minutes.
func DefaultConfig() Config {
	return Config{LeaseTTL: 10 * time.Second, Standby: 5 * time.Second, LogSnapshots: 10 * time.Minute}
}

// Validate checks the settings that matter when cluster mode is on.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if !validName(c.Member) {
		return fmt.Errorf("cluster.member %q: use 1 to 64 letters, digits, '-' and '_'", c.Member)
	}
	if c.LeaseTTL < 2*time.Second {
		return errors.New("cluster.lease_ttl: must be at least 2s")
	}
	if c.Standby < 0 {
		return errors.New("cluster.standby: must be 0 (off) or a positive duration")
	}
	if c.LogSnapshots != 0 && c.LogSnapshots < time.Second {
		return errors.New("cluster.log_snapshots: must be 0 (off) or at least 1s")
	}
	if c.Partitions < 0 || c.Partitions > journal.MaxPartitions {
		return fmt.Errorf("cluster.partitions: must be 0 (off) to %d, got %d", journal.MaxPartitions, c.Partitions)
	}
	if c.AdvertiseURL != "" {
		u, err := url.Parse(c.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("cluster.advertise_url: %q must be an http:// or https:// URL", c.AdvertiseURL)
		}
	}
	return nil
}
