package auth

import (
	"sync"
	"time"
)

// Sampler bounds how often denials are logged: a client retrying a wrong
// password in a loop must not fill the disk. It lets through the first
// event of each key and then at most one per interval, and counts what it
// held back so the next line that passes can say how many it stands for.
// Metrics count every denial; the sampler only thins the log.
type Sampler struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*sampled
}

type sampled struct {
	last       time.Time
	suppressed int
}

// NewSampler returns a sampler letting one event per key through every
// interval.
func NewSampler(every time.Duration) *Sampler {
	return &Sampler{every: every, keys: map[string]*sampled{}}
}

// Allow reports whether an event of key at now should be logged and, if
// so, how many of the key's events were held back since the last one that
// was. Keys are a small fixed set (denial reasons), so the map stays small.
func (s *Sampler) Allow(key string, now time.Time) (ok bool, suppressed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	if k == nil {
		s.keys[key] = &sampled{last: now}
		return true, 0
	}
	if now.Sub(k.last) < s.every {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}
