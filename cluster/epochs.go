package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the KV bucket of the cluster's durable facts: the latest
// anchor epoch. It keeps history and never expires.
const StateBucket = "coldchain_cluster"

// EpochKey holds the latest epoch cut by any anchorer of the cluster.
const EpochKey = "anchor.epoch"

// EpochMark is the latest epoch cut in the cluster: its number and root,
// and the anchorer (member and term of its anchor lease) that cut it or
// took over after it.
type EpochMark struct {
	Number uint64 `json:"number"`
	Root   string `json:"root"` // hex
	Member string `json:"member"`
	Term   uint64 `json:"term"`
}

// Epochs is the chain of anchor epochs across anchorers.
type Epochs struct{ kv jetstream.KeyValue }

// OpenEpochs opens the cluster state bucket, creating it.
func OpenEpochs(ctx context.Context, js jetstream.JetStream, replicas int) (*Epochs, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: StateBucket, Description: "coldchain cluster state: the latest anchor epoch",
		History: 64, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the cluster state bucket %s: %w", StateBucket, err)
	}
	return &Epochs{kv: kv}, nil
}

// Latest returns the latest epoch mark and its revision; ok is false when
// no anchorer has recorded one.
func (e *Epochs) Latest(ctx context.Context) (m EpochMark, rev uint64, ok bool, err error) {
	en, err := e.kv.Get(ctx, EpochKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return EpochMark{}, 0, false, nil
	}
	if err != nil {
		return EpochMark{}, 0, false, err
	}
	if err := json.Unmarshal(en.Value(), &m); err != nil {
		return EpochMark{}, 0, false, fmt.Errorf("%s in %s is unreadable: %w", EpochKey, StateBucket, err)
	}
	return m, en.Revision(), true, nil
}

// CheckCurrent reports whether an anchorer whose latest cut epoch is
// (number, root) holds every epoch the cluster cut, and so may continue
// the chain. A number of 0 means no epoch.
func CheckCurrent(latest EpochMark, ok bool, number uint64, root [32]byte) error {
	if !ok {
		return nil
	}
	if latest.Number == number && (number == 0 || latest.Root == hex.EncodeToString(root[:])) {
		return nil
	}
	if latest.Number > number {
		return fmt.Errorf("the cluster's latest epoch is %d (cut by %s) and this gateway's shipment logs end at epoch %d: only a gateway with every epoch may anchor (docs/CLUSTER.md)",
			latest.Number, latest.Member, number)
	}
	return fmt.Errorf("this gateway's epoch %d (root %x) does not match the cluster's epoch %d (root %s, cut by %s): its shipment logs are not the cluster's; it will not anchor",
		number, root[:4], latest.Number, shortRoot(latest.Root), latest.Member)
}

func shortRoot(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// Fence is an anchorer's claim on the epoch chain for one term of its
// lease. Take it after taking the lease; Record each epoch before cutting
// it.
type Fence struct {
	kv     jetstream.KeyValue
	member string
	term   uint64
	rev    uint64
	mark   EpochMark
}

// Take claims the epoch chain for member's term, if (number, root) is
// current (CheckCurrent). It rewrites the mark with a compare-and-set, so
// a previous anchorer's Fence can no longer record an epoch.
func (e *Epochs) Take(ctx context.Context, member string, term, number uint64, root [32]byte) (*Fence, error) {
	latest, rev, ok, err := e.Latest(ctx)
	if err != nil {
		return nil, err
	}
	if err := CheckCurrent(latest, ok, number, root); err != nil {
		return nil, err
	}
	m := EpochMark{Number: number, Member: member, Term: term}
	if number > 0 {
		m.Root = hex.EncodeToString(root[:])
	}
	f := &Fence{kv: e.kv, member: member, term: term, mark: m}
	if err := f.write(ctx, rev, ok); err != nil {
		return nil, err
	}
	return f, nil
}

// Record records epoch number with root as the cluster's latest, with a
// compare-and-set on the revision this Fence wrote last. It fails if
// another anchorer took the chain since (ErrFenced), or if number does not
// follow the fence's last epoch.
func (f *Fence) Record(ctx context.Context, number uint64, root [32]byte) error {
	// number == f.mark.Number: a cut recorded here whose local write then
	// failed, cut again; it was never submitted, since the anchorer
	// submits only what it has written.
	if number != f.mark.Number+1 && number != f.mark.Number {
		return fmt.Errorf("epoch %d does not follow the cluster's latest epoch %d", number, f.mark.Number)
	}
	prev := f.mark
	f.mark.Number, f.mark.Root = number, hex.EncodeToString(root[:])
	if err := f.write(ctx, f.rev, true); err != nil {
		f.mark = prev
		return err
	}
	return nil
}

// ErrFenced means another anchorer took the epoch chain.
var ErrFenced = errors.New("another gateway took over anchoring")

func (f *Fence) write(ctx context.Context, rev uint64, exists bool) error {
	b, _ := json.Marshal(f.mark)
	var nrev uint64
	var err error
	if exists {
		nrev, err = f.kv.Update(ctx, EpochKey, b, rev)
	} else {
		nrev, err = f.kv.Create(ctx, EpochKey, b)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrFenced
	}
	if err != nil {
		return fmt.Errorf("recording the epoch in %s: %w", StateBucket, err)
	}
	f.rev = nrev
	return nil
}

// Forget deletes the epoch record, for an operator who lost the anchoring
// gateway for good: the next anchorer starts a new chain of epochs from
// its own shipment logs (docs/CLUSTER.md). It returns the record it
// deleted (ok false when there was none).
func (e *Epochs) Forget(ctx context.Context) (m EpochMark, ok bool, err error) {
	m, _, ok, err = e.Latest(ctx)
	if err != nil || !ok {
		return m, ok, err
	}
	return m, true, e.kv.Purge(ctx, EpochKey)
}
