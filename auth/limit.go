package auth

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket per key: each key may take Burst at once and
// Rate a second after that. The gateway keys it by identity (a device or
// site over MQTT, an API token over HTTP), so opening more connections
// buys nothing. A zero Rate is no limit.
//
// Only registered identities are limited, so the keys are bounded by the
// registry; a bucket that has refilled is the same as none, so full ones
// are forgotten from time to time and memory follows the active keys.
type Limiter struct {
	Rate  float64 // per second
	Burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	// sweepAt is the size at which full buckets are next forgotten.
	sweepAt int
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of rate a second with burst at once; rate
// 0 limits nothing.
func NewLimiter(rate float64, burst int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	return &Limiter{Rate: rate, Burst: burst}
}

// Take takes one token of key's bucket at now. When the bucket is empty it
// takes nothing and says how long until a token is back.
func (l *Limiter) Take(key string, now time.Time) (ok bool, wait time.Duration) {
	if l == nil || l.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if l.buckets == nil {
			l.buckets = map[string]*bucket{}
		}
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(l.Burst), last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false, time.Duration(math.Ceil((1 - b.tokens) / l.Rate * float64(time.Second)))
	}
	b.tokens--
	return true, 0
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(float64(l.Burst), b.tokens+dt.Seconds()*l.Rate)
		b.last = now
	}
}

// sweep forgets the buckets that are full again at now, and sets the next
// sweep at twice what is left (at least 1,024), so sweeps cost O(1) a take
// on average.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.Burst) {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(1024, 2*len(l.buckets))
}

// Tracked is how many keys have a bucket that is not known to be full.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// String describes the limit for an error message: "100 a second, 5000 at
// once".
func (l *Limiter) String() string {
	if l == nil || l.Rate <= 0 {
		return "no limit"
	}
	return fmt.Sprintf("%s a second, %d at once", trimFloat(l.Rate), l.Burst)
}

func trimFloat(f float64) string { return fmt.Sprintf("%g", f) }

// ReasonRateLimited is a request refused because its identity sent more
// than its rate limit allows.
const ReasonRateLimited = "rate_limited"

// RateLimited is the denial for who, over limit l, which may try again
// after wait.
func RateLimited(who string, l *Limiter, what string, wait time.Duration) *Denial {
	return &Denial{Reason: ReasonRateLimited, RetryAfter: wait,
		Detail: fmt.Sprintf("%s sent %s faster than its limit (%s): retry in %v", who, what, l, wait.Round(time.Millisecond))}
}
