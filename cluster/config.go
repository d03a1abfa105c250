package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"time"
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
}

// DefaultConfig is cluster mode off, with a 10 s lease and a 5 s standby.
func DefaultConfig() Config { return Config{LeaseTTL: 10 * time.Second, Standby: 5 * time.Second} }

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
	if c.AdvertiseURL != "" {
		u, err := url.Parse(c.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("cluster.advertise_url: %q must be an http:// or https:// URL", c.AdvertiseURL)
		}
	}
	return nil
}
