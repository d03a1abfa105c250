package cluster

import (
	"bytes"
	"context"
	"testing"
)

// TestSnapshots: a saved snapshot is read back with its position; an
// older one does not replace a newer one, a newer one does.
func TestSnapshots(t *testing.T) {
	nodes := testCluster(t)
	js := connect(t, nodes[0])
	var snaps *Snapshots
	var err error
	waitFor(t, "the snapshot bucket", func() bool { snaps, err = OpenSnapshots(context.Background(), js, 3); return err == nil })
	ctx := context.Background()
	if _, _, ok, err := snaps.Load(ctx, "detector"); err != nil || ok {
		t.Fatalf("a snapshot before any save: %v %v", ok, err)
	}
	big := bytes.Repeat([]byte("state "), 100_000) // several chunks
	if stored, err := snaps.Save(ctx, "detector", 40, big); err != nil || !stored {
		t.Fatalf("first save: %v %v", stored, err)
	}
	if stored, err := snaps.Save(ctx, "detector", 39, []byte("older")); err != nil || stored {
		t.Fatalf("an older snapshot replaced a newer one: %v %v", stored, err)
	}
	data, seq, ok, err := snaps.Load(ctx, "detector")
	if err != nil || !ok || seq != 40 || !bytes.Equal(data, big) {
		t.Fatalf("load: seq %d ok %v err %v, %d bytes (want 40, %d bytes)", seq, ok, err, len(data), len(big))
	}
	if stored, err := snaps.Save(ctx, "detector", 41, []byte("newer")); err != nil || !stored {
		t.Fatalf("newer save: %v %v", stored, err)
	}
	if data, seq, _, _ := snaps.Load(ctx, "detector"); seq != 41 || string(data) != "newer" {
		t.Fatalf("after the newer save: %d %q", seq, data)
	}
	// Another member, reconnected elsewhere, reads the same snapshot.
	other, err := OpenSnapshots(ctx, connect(t, nodes[2]), 3)
	if err != nil {
		t.Fatal(err)
	}
	if data, seq, ok, err := other.Load(ctx, "detector"); err != nil || !ok || seq != 41 || string(data) != "newer" {
		t.Fatalf("from another node: %d %q %v %v", seq, data, ok, err)
	}
}
