package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestSnapshots: a saved snapshot is read back with its position; an
// older one does not replace a newer one, a newer one does.
func TestSnapshots(t *testing.T) {
	nodes := testCluster(t)
	snaps := openSnapshots(t, connect(t, nodes[0]))
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

// TestSnapshotFiles: the object methods the shipment-log snapshots use,
// on the real object store: a file of many chunks read back whole, a
// listing by prefix, fs.ErrNotExist for opening what is not there, and
// deletes that may repeat.
func TestSnapshotFiles(t *testing.T) {
	nodes := testCluster(t)
	snaps := openSnapshots(t, connect(t, nodes[0]))
	ctx := context.Background()
	if _, err := snaps.Open(ctx, "anchor/manifest"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening what is not there: %v", err)
	}
	if names, err := snaps.List(ctx, "anchor/file/"); err != nil || len(names) != 0 {
		t.Fatalf("listing an empty bucket: %v %v", names, err)
	}
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, name := range []string{"anchor/file/a", "anchor/file/b", "anchor/manifest"} {
		if err := snaps.Put(ctx, name, bytes.NewReader(big)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := snaps.Open(ctx, "anchor/file/b")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(big))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := snaps.List(ctx, "anchor/file/")
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"anchor/file/a", "anchor/file/b"}) {
		t.Fatalf("list: %v %v", names, err)
	}
	if err := snaps.Delete(ctx, "anchor/file/a"); err != nil {
		t.Fatal(err)
	}
	if err := snaps.Delete(ctx, "anchor/file/a"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := snaps.Delete(ctx, "anchor/file/never"); err != nil {
		t.Fatalf("deleting what never was: %v", err)
	}
	if names, _ := snaps.List(ctx, "anchor/file/"); !slices.Equal(names, []string{"anchor/file/b"}) {
		t.Fatalf("after delete: %v", names)
	}
}

// openSnapshots opens the snapshot bucket once the cluster can place it.
func openSnapshots(t *testing.T, js jetstream.JetStream) *Snapshots {
	t.Helper()
	var snaps *Snapshots
	var err error
	waitFor(t, "the snapshot bucket", func() bool { snaps, err = OpenSnapshots(context.Background(), js, 3); return err == nil })
	return snaps
}
