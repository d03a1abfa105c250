package journal

import (
	"testing"
	"time"
)

// TestRetry: the backoff doubles while runs fail, stops at 10 s, and
// starts again at 100 ms after a run that handled a batch.
func TestRetry(t *testing.T) {
	var r retry
	var got []time.Duration
	for range 9 {
		got = append(got, r.failed())
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoffs %v, want %v ms", got, want)
		}
	}
	r.progressed()
	if d := r.failed(); d != 100*time.Millisecond {
		t.Fatalf("after a run that made progress: %v, want 100ms", d)
	}
	if d := r.failed(); d != 200*time.Millisecond {
		t.Fatalf("second failure after progress: %v", d)
	}
}
