package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// SnapshotBucket is the JetStream object store that holds the state a
// member hands over to the next holder of a lease: the detector's
// snapshot (Save, Load), so the member that takes the consumers lease
// continues from the last holder's snapshot and replays only the readings
// after it; and the anchorer's snapshots of the shipment logs (the
// anchor.SnapshotStore methods: Put, Open, List, Delete), so a member
// without logs replays only the steps after the latest.
const SnapshotBucket = "coldchain_snapshots"

// seqKey is the object metadata key of the journal position a snapshot
// includes.
const seqKey = "seq"

// Snapshots is the snapshot bucket.
type Snapshots struct{ obs jetstream.ObjectStore }

// OpenSnapshots opens the snapshot bucket, creating it.
func OpenSnapshots(ctx context.Context, js jetstream.JetStream, replicas int) (*Snapshots, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: SnapshotBucket, Description: "coldchain state handed over between gateways: the detector snapshot",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the snapshot bucket %s: %w", SnapshotBucket, err)
	}
	return &Snapshots{obs: obs}, nil
}

// Save stores data as the snapshot name at journal position seq, unless
// the bucket holds one at a later position already (a member that lost
// its lease and saves its last snapshot after the next holder saved a
// newer one). It reports whether it stored data.
func (s *Snapshots) Save(ctx context.Context, name string, seq uint64, data []byte) (bool, error) {
	if have, ok, err := s.Seq(ctx, name); err != nil {
		return false, err
	} else if ok && have > seq {
		return false, nil
	}
	_, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: name, Metadata: map[string]string{seqKey: strconv.FormatUint(seq, 10)}},
		bytes.NewReader(data))
	if err != nil {
		return false, fmt.Errorf("saving snapshot %s in %s: %w", name, SnapshotBucket, err)
	}
	return true, nil
}

// Seq returns the journal position of the stored snapshot name; ok is
// false when there is none.
func (s *Snapshots) Seq(ctx context.Context, name string) (seq uint64, ok bool, err error) {
	info, err := s.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading snapshot %s in %s: %w", name, SnapshotBucket, err)
	}
	seq, err = strconv.ParseUint(info.Metadata[seqKey], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("snapshot %s in %s has no readable %s: %w", name, SnapshotBucket, seqKey, err)
	}
	return seq, true, nil
}

// Load returns the stored snapshot name and its position; ok is false
// when there is none.
func (s *Snapshots) Load(ctx context.Context, name string) (data []byte, seq uint64, ok bool, err error) {
	seq, ok, err = s.Seq(ctx, name)
	if err != nil || !ok {
		return nil, 0, false, err
	}
	data, err = s.obs.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading snapshot %s in %s: %w", name, SnapshotBucket, err)
	}
	return data, seq, true, nil
}

// Put stores r as the object name.
func (s *Snapshots) Put(ctx context.Context, name string, r io.Reader) error {
	if _, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, r); err != nil {
		return fmt.Errorf("storing %s in %s: %w", name, SnapshotBucket, err)
	}
	return nil
}

// Open reads the object name; the error is fs.ErrNotExist when there is
// none. The object's digest is checked when it has been read to its end.
func (s *Snapshots) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := s.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%s in %s: %w", name, SnapshotBucket, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", name, SnapshotBucket, err)
	}
	return r, nil
}

// List returns the names of the objects whose name starts with prefix.
func (s *Snapshots) List(ctx context.Context, prefix string) ([]string, error) {
	infos, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", SnapshotBucket, err)
	}
	var out []string
	for _, info := range infos {
		if strings.HasPrefix(info.Name, prefix) {
			out = append(out, info.Name)
		}
	}
	return out, nil
}

// Delete deletes the object name; deleting one that is not there is not
// an error.
func (s *Snapshots) Delete(ctx context.Context, name string) error {
	err := s.obs.Delete(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("deleting %s in %s: %w", name, SnapshotBucket, err)
	}
	return nil
}
