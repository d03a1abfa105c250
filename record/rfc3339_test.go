package record

import (
	"math/rand/v2"
	"testing"
	"time"
)

// checkRFC3339 fails if the fast parser accepts what time.Parse refuses,
// or reads another instant.
func checkRFC3339(t *testing.T, s string) (fast bool) {
	t.Helper()
	got, ok := parseRFC3339([]byte(s))
	want, err := time.Parse(time.RFC3339Nano, s)
	if ok && err != nil {
		t.Fatalf("%q: fast parser accepted what time.Parse refuses: %v", s, err)
	}
	if ok && !got.Equal(want) {
		t.Fatalf("%q: fast %s, time.Parse %s", s, got, want)
	}
	return ok
}

func TestParseRFC3339MatchesTime(t *testing.T) {
	for _, tc := range []struct {
		s    string
		fast bool
	}{
		{"2026-03-01T08:00:00Z", true},
		{"2026-03-01T16:00:00+08:00", true},
		{"2026-03-01T16:00:00.5-03:30", true},
		{"2026-03-01T16:00:00.123456789Z", true},
		{"2024-02-29T23:59:59Z", true},
		{"2026-02-29T00:00:00Z", false},  // not a leap year
		{"2026-04-31T00:00:00Z", false},  // April has 30 days
		{"2026-03-01T24:00:00Z", false},  // hour
		{"2026-03-01T08:60:00Z", false},  // minute
		{"2026-03-01T08:00:60Z", false},  // leap second: time.Parse decides
		{"2026-03-01T08:00:00", false},   // no offset
		{"2026-03-01t08:00:00Z", false},  // lower-case t
		{"2026-03-01T08:00:00z", false},  // lower-case z
		{"2026-03-01T08:00:00.Z", false}, // empty fraction
		{"2026-03-01T08:00:00,5Z", false},
		{"2026-03-01T08:00:00.1234567891Z", false}, // 10 digits: time.Parse truncates
		{"2026-03-01T08:00:00+0800", false},
		{"2026-03-01T08:00:00+24:00", false},
		{"2026-3-01T08:00:00Z", false},
		{"2026-03-01 08:00:00Z", false},
		{"", false},
	} {
		if got := checkRFC3339(t, tc.s); got != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.s, got, tc.fast)
		}
	}
	// Random instants in every offset format the encoder and devices use.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		at := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
		off := time.FixedZone("", (rng.IntN(48)-24)*30*60)
		for _, layout := range []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00"} {
			s := at.In(off).Format(layout)
			if !checkRFC3339(t, s) {
				t.Fatalf("%q: not on the fast path", s)
			}
		}
	}
}

func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2026-03-01T08:00:00Z", "2026-03-01T16:00:00.5-03:30", "2024-02-29T23:59:59.999999999+14:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkRFC3339(t, s) })
}

func BenchmarkParseRFC3339(b *testing.B) {
	s := []byte("2026-03-01T16:00:00.123+08:00")
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := parseRFC3339(s); !ok {
				b.Fatal("slow")
			}
		}
	})
	b.Run("time.Parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := time.Parse(time.RFC3339Nano, string(s)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
