package auth

import (
	"sync"
	"time"
)

// Throttle slows down guessing: after Max failed logins from one source
// (a client's IP address) within Window, that source is refused at once,
// without a password check, until the window that began with its first
// failure has passed. A bcrypt check costs tens of milliseconds of CPU, so
// without it a loop of bad CONNECTs is a cheap way to burn the gateway's
// cores. Successful logins are never slowed.
type Throttle struct {
	Max    int
	Window time.Duration
	// Cap bounds how many sources are tracked; beyond it the oldest
	// windows are forgotten first.
	Cap int

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	since time.Time
	n     int
}

// NewThrottle returns a throttle of max failures a minute per source,
// tracking up to 100,000 sources.
func NewThrottle(max int) *Throttle { return &Throttle{Max: max, Window: time.Minute, Cap: 100_000} }

// Blocked reports whether source has failed Max times in its current
// window, and when it may try again.
func (t *Throttle) Blocked(source string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.sources[source]
	if f == nil || now.Sub(f.since) >= t.Window {
		return false, 0
	}
	if f.n < t.Max {
		return false, 0
	}
	return true, t.Window - now.Sub(f.since)
}

// Fail records a failed login from source.
func (t *Throttle) Fail(source string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sources == nil {
		t.sources = map[string]*failures{}
	}
	f := t.sources[source]
	if f == nil || now.Sub(f.since) >= t.Window {
		if f == nil && len(t.sources) >= t.Cap {
			t.evict(now)
		}
		t.sources[source] = &failures{since: now, n: 1}
		return
	}
	f.n++
}

// evict forgets expired windows and, if that is not enough, those more
// than a tenth of the way through, then any until under Cap.
func (t *Throttle) evict(now time.Time) {
	for k, f := range t.sources {
		if now.Sub(f.since) >= t.Window {
			delete(t.sources, k)
		}
	}
	if len(t.sources) < t.Cap {
		return
	}
	cutoff := now.Add(-t.Window + t.Window/10*9)
	for k, f := range t.sources {
		if f.since.Before(cutoff) {
			delete(t.sources, k)
		}
	}
	for k := range t.sources {
		if len(t.sources) < t.Cap {
			break
		}
		delete(t.sources, k)
	}
}

// ReasonThrottled is a login refused without checking because its source
// failed too often.
const ReasonThrottled = "too_many_failures"
