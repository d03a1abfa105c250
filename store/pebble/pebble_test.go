package pebble

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/store"
	"github.com/coldchain/coldchain/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, opts store.Options) store.Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

// BenchmarkWriter is the writer's throughput into the embedded store.
//
//	go test -run '^$' -bench . -benchtime 20x ./store/pebble/
func BenchmarkWriter(b *testing.B) {
	for _, size := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			s, err := Open(b.TempDir(), store.Options{}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchWriter(b, s, size)
		})
	}
}

// BenchmarkMonth is the query latency of a 30-day shipment (43,200
// readings), raw and downsampled to 1 h.
func BenchmarkMonth(b *testing.B) {
	s, err := Open(b.TempDir(), store.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchQueries(b, s, storetest.Month(b, s))
}
