package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket of the device registry: one
// key per device id, the Device as JSON. Every gateway on the same NATS
// sees the same devices; the bucket keeps each key's last 16 revisions,
// so a change can be traced.
const Bucket = "coldchain_devices"

// ErrUnknown is returned for a device not in the registry.
var ErrUnknown = errors.New("device not registered")

// Registry is the device registry in JetStream KV.
type Registry struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenRegistry opens the registry bucket, creating it (file storage,
// replicas copies).
func OpenRegistry(ctx context.Context, js jetstream.JetStream, replicas int) (*Registry, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "coldchain devices: serial, model and calibration records",
		History: 16, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the device registry (KV bucket %s): %w", Bucket, err)
	}
	return &Registry{kv: kv, now: time.Now}, nil
}

// Register adds d, or merges it into the registered device of its id
// (Merge: same serial, calibrations added once), with a compare-and-set
// on the key's revision so concurrent changes are never lost. It returns
// the device as stored.
func (r *Registry) Register(ctx context.Context, d Device) (Device, error) {
	for attempt := 0; ; attempt++ {
		var old *Device
		var rev uint64
		e, err := r.kv.Get(ctx, d.ID)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return Device{}, err
		default:
			var have Device
			if err := json.Unmarshal(e.Value(), &have); err != nil {
				return Device{}, fmt.Errorf("device %s: the registry holds an unreadable record: %w", d.ID, err)
			}
			old, rev = &have, e.Revision()
		}
		out, err := Merge(old, d, r.now())
		if err != nil {
			return Device{}, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return Device{}, err
		}
		var stored uint64
		if old == nil {
			stored, err = r.kv.Create(ctx, d.ID, b)
		} else {
			stored, err = r.kv.Update(ctx, d.ID, b, rev)
		}
		if err == nil {
			out.Revision = stored
			return out, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !strings.Contains(err.Error(), "wrong last sequence") || attempt >= 10 {
			return Device{}, fmt.Errorf("device %s: %w", d.ID, err)
		}
		// Someone changed it meanwhile: merge into their version.
	}
}

// Get returns the registered device id, or ErrUnknown.
func (r *Registry) Get(ctx context.Context, id string) (Device, error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Device{}, fmt.Errorf("%w: %s (coldchain devices register %s --serial S)", ErrUnknown, id, id)
	}
	if err != nil {
		return Device{}, err
	}
	var d Device
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return Device{}, fmt.Errorf("device %s: the registry holds an unreadable record: %w", id, err)
	}
	d.Revision = e.Revision()
	return d, nil
}

// List returns every registered device, by id.
func (r *Registry) List(ctx context.Context) ([]Device, error) {
	lister, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	out := make([]Device, 0, len(ids))
	for _, id := range ids {
		d, err := r.Get(ctx, id)
		if errors.Is(err, ErrUnknown) {
			continue // deleted since listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Watched is an in-memory copy of the registry kept current by a KV
// watch: what the detector reads for every reading, without a lock.
type Watched struct {
	m       atomic.Pointer[map[string]*Device]
	version atomic.Uint64 // bumped on every change
	ready   chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// Watch starts following the registry until Stop. Get answers from an
// empty registry until the current devices have been read (Ready is
// closed then).
func (r *Registry) Watch(ctx context.Context) (*Watched, error) {
	ctx, stop := context.WithCancel(ctx)
	kw, err := r.kv.WatchAll(ctx)
	if err != nil {
		stop()
		return nil, fmt.Errorf("watching the device registry: %w", err)
	}
	w := &Watched{ready: make(chan struct{}), stop: stop, done: make(chan struct{})}
	empty := map[string]*Device{}
	w.m.Store(&empty)
	go func() {
		defer close(w.done)
		defer func() { _ = kw.Stop() }()
		// The initial load fills one map, published when complete; after
		// that each change copies it (readers hold the old one meanwhile).
		cur := map[string]*Device{}
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-kw.Updates():
				if !ok {
					return
				}
				if e == nil {
					if initial {
						initial = false
						w.m.Store(&cur)
						w.version.Add(1)
						close(w.ready)
					}
					continue
				}
				if !initial {
					cur = maps.Clone(cur)
				}
				var d Device
				if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &d) == nil {
					d.Revision = e.Revision()
					cur[e.Key()] = &d
				} else {
					delete(cur, e.Key())
				}
				if !initial {
					w.m.Store(&cur)
					w.version.Add(1)
				}
			}
		}
	}()
	return w, nil
}

// Get returns the registered device id; nil when it is not registered.
// The device is shared: do not change it.
func (w *Watched) Get(id string) *Device { return (*w.m.Load())[id] }

// Version changes whenever the registry does.
func (w *Watched) Version() uint64 { return w.version.Load() }

// Ready is closed once the devices that existed at the start are loaded.
func (w *Watched) Ready() <-chan struct{} { return w.ready }

// Stop ends the watch and waits for it.
func (w *Watched) Stop() {
	w.stop()
	<-w.done
}
