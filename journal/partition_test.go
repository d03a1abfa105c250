package journal

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
)

// TestPartition pins the partition function: it is part of the stored
// subjects, so a change would move shipments between partitions under
// running consumers.
func TestPartition(t *testing.T) {
	// FNV-1a 32 of "a" is 0xe40c292c.
	if got, want := Partition("a", 1000), int(uint32(0xe40c292c)%1000); got != want {
		t.Fatalf("Partition(a, 1000) = %d, want %d (FNV-1a 32)", got, want)
	}
	counts := make([]int, 8)
	for i := range 8000 {
		p := Partition(fmt.Sprintf("SHP-%05d", i), 8)
		if p < 0 || p >= 8 {
			t.Fatalf("partition %d out of range", p)
		}
		counts[p]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("partition %d holds %d of 8000 shipments: %v", p, c, counts)
		}
	}
	if got := SubjectReadingIn("S1", "D1", 0); got != "coldchain.readings.S1.D1" {
		t.Fatalf("unpartitioned subject %q", got)
	}
	if got, want := SubjectReadingIn("S1", "D1", 4), fmt.Sprintf("coldchain.readings.S1.D1.%d", Partition("S1", 4)); got != want {
		t.Fatalf("partitioned subject %q, want %q", got, want)
	}
}

// TestConsumePartitions stores readings of several shipments, some before
// partitioning (no token) and some after, and reads them with one
// consumer per partition and one for the unpartitioned: every reading is
// delivered to exactly one of them, the one its shipment belongs to.
func TestConsumePartitions(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	const parts = 3
	entry := func(ship string, seq uint64, partitions int) Entry {
		r := record.Reading{Shipment: ship, Device: "D-" + ship, Seq: seq, Time: time.Date(2026, 3, 1, 0, 0, int(seq), 0, time.UTC), TempC: 5}
		return Entry{Kind: record.KindReading, ID: r.ID(), Subject: SubjectReadingIn(r.Shipment, r.Device, partitions),
			Data: r.AppendCanonical(nil), Device: r.Device, Seq: seq}
	}
	ships := []string{"SA", "SB", "SC", "SD", "SE", "SF"}
	for _, s := range ships {
		e.append(entry(s, 1, 0), entry(s, 2, 0))
		e.append(entry(s, 3, parts), entry(s, 4, parts), entry(s, 5, parts))
	}
	got := map[string]string{} // reading id -> consumer
	read := func(name, filter string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_ = e.j.Consume(ctx, record.KindReading, ConsumeOptions{Durable: name, Filter: filter, MaxWait: 100 * time.Millisecond, OnIdle: cancel},
			func(_ context.Context, b []Msg) error {
				for _, m := range b {
					if prev, ok := got[m.ID]; ok {
						t.Errorf("%s delivered to %s and %s", m.ID, prev, name)
					}
					got[m.ID] = name
				}
				return nil
			})
	}
	read("legacy", FilterUnpartitioned)
	for p := range parts {
		read(fmt.Sprintf("p%d", p), FilterPartition(p))
	}
	if len(got) != len(ships)*5 {
		t.Fatalf("%d readings delivered, want %d: %v", len(got), len(ships)*5, got)
	}
	for id, name := range got {
		ship, seq, _ := strings.Cut(strings.TrimPrefix(id, "D-"), ":")
		want := fmt.Sprintf("p%d", Partition(ship, parts))
		if seq <= "2" {
			want = "legacy"
		}
		if name != want {
			t.Errorf("%s read by %s, want %s", id, name, want)
		}
	}
}
