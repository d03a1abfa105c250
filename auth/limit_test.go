package auth

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func TestLimiterBurstThenRate(t *testing.T) {
	l := NewLimiter(10, 3)
	for i := range 3 {
		if ok, _ := l.Take("dev-1", t0); !ok {
			t.Fatalf("take %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.Take("dev-1", t0)
	if ok {
		t.Fatal("fourth take at once allowed over a burst of 3")
	}
	if wait != 100*time.Millisecond {
		t.Errorf("wait = %v, want 100ms (one token at 10 a second)", wait)
	}
	if ok, _ := l.Take("dev-2", t0); !ok {
		t.Error("another key shares dev-1's bucket")
	}
	if ok, _ := l.Take("dev-1", t0.Add(99*time.Millisecond)); ok {
		t.Error("token back before 100ms")
	}
	if ok, _ := l.Take("dev-1", t0.Add(100*time.Millisecond)); !ok {
		t.Error("token not back after 100ms")
	}
	// A long pause refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	n := 0
	for {
		if ok, _ := l.Take("dev-1", later); !ok {
			break
		}
		n++
	}
	if n != 3 {
		t.Errorf("after an hour idle %d takes at once, want the burst of 3", n)
	}
}

func TestLimiterOff(t *testing.T) {
	for _, l := range []*Limiter{nil, NewLimiter(0, 10)} {
		for range 1000 {
			if ok, _ := l.Take("k", t0); !ok {
				t.Fatalf("limiter %v refused", l)
			}
		}
		if got := l.String(); got != "no limit" {
			t.Errorf("String() = %q", got)
		}
	}
}

// TestLimiterNeverExceeds checks the promise at random times: over any
// run, a key is allowed at most burst + rate × elapsed, and a client that
// waits as told is allowed again.
func TestLimiterNeverExceeds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		rate, burst := 1+rng.Float64()*100, 1+rng.IntN(50)
		l := NewLimiter(rate, burst)
		now, allowed := t0, 0
		for range 2000 {
			now = now.Add(time.Duration(rng.ExpFloat64() / rate / 2 * float64(time.Second)))
			ok, wait := l.Take("k", now)
			if ok {
				allowed++
				continue
			}
			if wait <= 0 {
				t.Fatalf("trial %d: refused with wait %v", trial, wait)
			}
			if ok, _ := l.Take("k", now.Add(wait)); !ok {
				t.Fatalf("trial %d: refused again after waiting the %v it was told", trial, wait)
			}
			allowed++
			now = now.Add(wait)
		}
		if max := float64(burst) + rate*now.Sub(t0).Seconds(); float64(allowed) > max+1e-9 {
			t.Fatalf("trial %d: %d allowed in %v at %g/s burst %d, at most %.1f", trial, allowed, now.Sub(t0), rate, burst, max)
		}
	}
}

func TestLimiterForgetsFullBuckets(t *testing.T) {
	l := NewLimiter(1, 2)
	for i := range 2000 {
		l.Take(fmt.Sprint("dev-", i), t0)
	}
	if got := l.Tracked(); got != 2000 {
		t.Fatalf("tracked %d, want 2000 (none full yet)", got)
	}
	// Two seconds later they are full again: the next new key sweeps
	// them, all but one that is still draining.
	later := t0.Add(2 * time.Second)
	for range 2 {
		l.Take("busy", later)
	}
	for i := range 3000 {
		l.Take(fmt.Sprint("new-", i), later)
	}
	if got := l.Tracked(); got >= 5000 || got < 3001 {
		t.Errorf("tracked %d after a sweep, want the 3,000 new keys and busy, without the 2,000 full ones", got)
	}
	if ok, _ := l.Take("busy", later); ok {
		t.Error("the sweep forgot a bucket that was empty")
	}
}

func TestRateLimitedDenial(t *testing.T) {
	d := RateLimited("device logger-1", NewLimiter(100, 5000), "messages", 1500*time.Millisecond)
	if d.Reason != ReasonRateLimited || d.RetryAfter != 1500*time.Millisecond {
		t.Errorf("denial %+v", d)
	}
	for _, want := range []string{"device logger-1", "100 a second, 5000 at once", "retry in 1.5s"} {
		if !strings.Contains(d.Detail, want) {
			t.Errorf("detail %q lacks %q", d.Detail, want)
		}
	}
}

func BenchmarkLimiterTake(b *testing.B) {
	l := NewLimiter(1e9, 1<<30)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("logger-", i)
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Take(keys[i%len(keys)], now)
		i++
	}
}
