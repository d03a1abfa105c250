package excursion

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestSnapshotMidDelay restarts the gateway 20 min into a 30 min
// single-event delay: 9 °C from 0, snapshot after the reading at 20,
// restore into a new detector, then readings at 25 and 30. The alarm opens
// at 30 ([0,30), 30 min beyond), exactly as without the restart.
func TestSnapshotMidDelay(t *testing.T) {
	before, after := every(0, 20, 5, 9, ""), every(25, 40, 5, 9, "")
	want := []string{"opened single_event_high [0,30) at 30 beyond 30m0s peak 9"}

	straight := newDetector(t, DefaultProfile(), DefaultConfig())
	feed(t, straight, "dev", before)
	if got := summaries(feed(t, straight, "dev", after), SingleEventHigh); !slices.Equal(got, want) {
		t.Fatalf("without restart: %q", got)
	}

	d := newDetector(t, DefaultProfile(), DefaultConfig())
	feed(t, d, "dev", before)
	snap, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	restarted := newDetector(t, DefaultProfile(), DefaultConfig())
	if err := restarted.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	if got := summaries(feed(t, restarted, "dev", after), SingleEventHigh); !slices.Equal(got, want) {
		t.Errorf("after restart: %q, want %q", got, want)
	}
}

// TestSnapshotRoundTrip restores a detector with open, held and cleared
// alerts, a pending Advance gap and more readings than its history, and
// checks that it encodes the same bytes and behaves the same afterwards.
func TestSnapshotRoundTrip(t *testing.T) {
	in := join(every(0, 40, 5, 9, "d"), every(45, 100, 5, 5, ""), every(105, 120, 5, 1.5, "o"))
	d := newDetector(t, DefaultProfile(), DefaultConfig())
	feed(t, d, "a", in)
	feed(t, d, "b", every(0, 20, 5, 30, ""))
	feed(t, d, "b", []r{{12, 7, ""}})
	if _, err := d.Advance(nil, "b", at(50)); err != nil {
		t.Fatal(err)
	}
	snap, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	e := newDetector(t, DefaultProfile(), DefaultConfig())
	if err := e.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := e.MarshalBinary()
	if string(again) != string(snap) {
		t.Fatal("snapshot does not round-trip")
	}
	more := join(every(125, 150, 5, 5, ""), []r{{122, 9, ""}})
	for _, dev := range []string{"a", "b"} {
		want, got := summaries(feed(t, d, dev, more)), summaries(feed(t, e, dev, more))
		if !slices.Equal(got, want) {
			t.Errorf("device %s after restore:\n got %q\nwant %q", dev, got, want)
		}
	}
}

func TestSnapshotErrors(t *testing.T) {
	d := newDetector(t, DefaultProfile(), DefaultConfig())
	feed(t, d, "dev", every(0, 60, 5, 9, ""))
	snap, _ := d.MarshalBinary()

	other := DefaultProfile()
	other.High.Delay = 20 * time.Minute
	tests := []struct {
		name    string
		profile Profile
		data    []byte
		want    error
	}{
		{"other profile", other, snap, ErrSnapshotMismatch},
		{"truncated", DefaultProfile(), snap[:len(snap)-3], ErrSnapshot},
		{"trailing garbage", DefaultProfile(), append(slices.Clone(snap), 0), ErrSnapshot},
		{"wrong magic", DefaultProfile(), append([]byte("XXXX"), snap[4:]...), ErrSnapshot},
		{"empty", DefaultProfile(), nil, ErrSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newDetector(t, tt.profile, DefaultConfig())
			feed(t, e, "keep", every(0, 5, 5, 5, ""))
			if err := e.UnmarshalBinary(tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if e.Len() != 1 {
				t.Error("a failed restore changed the detector")
			}
		})
	}
}
