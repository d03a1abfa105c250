package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// LeaseBucket is the KV bucket of the leases. Its values expire after the
// lease TTL, which is the bucket's TTL.
const LeaseBucket = "coldchain_leases"

// Holding is what a lease key holds: who holds it and since when.
type Holding struct {
	Member string    `json:"member"`
	Since  time.Time `json:"since"`
	// Term is the revision of the create that started this holding; a
	// holder writes it in every renewal.
	Term uint64 `json:"term"`
}

// OpenLeases opens the lease bucket, creating it with the given TTL and
// replicas. Every member must use the same TTL: the bucket is updated to
// the TTL of the last member that opened it.
func OpenLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LeaseBucket, Description: "coldchain leases: which gateway does which part of the work",
		History: 1, TTL: ttl, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the lease bucket %s: %w", LeaseBucket, err)
	}
	return kv, nil
}

// ErrHandOver, returned by the work, gives the lease up on purpose, for
// another member that is better placed to do it; it is logged as news.
var ErrHandOver = errors.New("another member is better placed")

// Elector contends for one lease and runs a piece of work while it holds
// it. Create it with NewElector, run it with Run.
type Elector struct {
	kv     jetstream.KeyValue
	key    string
	member string
	log    *zap.Logger
	now    func() time.Time
	// Eligible, when set, is asked before every attempt to take the lease:
	// a member that may not do the work (its state is not the latest) does
	// not contend.
	Eligible func(ctx context.Context) error
	// Routine, when set, logs why this member does not contend at debug
	// level: for partitions, where holding one's share is the normal
	// state and its reason changes with every rebalance.
	Routine bool

	mu      sync.Mutex
	l       lease
	holder  Holding // the holder as last seen, ours or another's
	waiting string  // why this member does not contend, "" when it does
}

// NewElector returns an Elector for the lease key of kv, whose values expire
// after ttl, for member.
func NewElector(kv jetstream.KeyValue, key, member string, ttl time.Duration, log *zap.Logger) *Elector {
	return &Elector{kv: kv, key: key, member: member, log: log, now: time.Now, l: lease{ttl: ttl}}
}

// Status is an Elector's view of its lease, for GET /v1/cluster.
type Status struct {
	Lease   string    `json:"lease"`
	Holder  string    `json:"holder,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Term    uint64    `json:"term,omitempty"`
	Held    bool      `json:"held"`
	Waiting string    `json:"not_contending,omitempty"`
}

// Status returns who holds the lease as this member last saw it.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Status{Lease: e.key, Holder: e.holder.Member, Since: e.holder.Since, Term: e.holder.Term,
		Held: e.l.held(e.now()), Waiting: e.waiting}
}

// Held reports whether this member holds the lease now, and its term.
func (e *Elector) Held() (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.l.term, e.l.held(e.now())
}

// Run contends for the lease until ctx ends. Each time it takes the lease
// it runs work with a context that is cancelled when the lease is lost,
// and waits for work to return before contending again; work must stop
// acting on the shared state once its context is done. On return it
// releases a lease it holds, so another member takes over at once.
func (e *Elector) Run(ctx context.Context, work func(ctx context.Context) error) error {
	t := time.NewTicker(e.l.renewEvery())
	defer t.Stop()
	for {
		if e.tryAcquire(ctx) {
			e.hold(ctx, t, work)
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// hold runs work while the lease is held, renewing it on every tick.
func (e *Elector) hold(ctx context.Context, t *time.Ticker, work func(ctx context.Context) error) {
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()
	e.log.Info("took the lease: this gateway now does its work", zap.String("lease", e.key), zap.Uint64("term", e.l.term))
	for {
		select {
		case err := <-done:
			// The work stopped by itself: give the lease up so another
			// member can try.
			stop()
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, ErrHandOver):
				e.log.Info("handing the lease over", zap.String("lease", e.key), zap.Error(err))
			case err != nil:
				e.log.Error("the work under the lease stopped; releasing the lease", zap.String("lease", e.key), zap.Error(err))
			}
			e.release()
			return
		case <-ctx.Done():
			stop()
			<-done
			e.release()
			return
		case <-t.C:
			if !e.renew(ctx) {
				stop()
				<-done
				e.log.Warn("lost the lease: stopped its work", zap.String("lease", e.key))
				return
			}
		}
	}
}

func (e *Elector) value(term uint64, since time.Time) []byte {
	b, _ := json.Marshal(Holding{Member: e.member, Since: since, Term: term})
	return b
}

// tryAcquire creates the lease key if it is absent (expired or released).
func (e *Elector) tryAcquire(ctx context.Context) bool {
	if e.Eligible != nil {
		if err := e.Eligible(ctx); err != nil {
			e.mu.Lock()
			if e.waiting != err.Error() {
				lvl := zap.WarnLevel
				if e.Routine {
					lvl = zap.DebugLevel
				}
				e.log.Log(lvl, "not contending for the lease", zap.String("lease", e.key), zap.Error(err))
			}
			e.waiting = err.Error()
			e.mu.Unlock()
			e.observe(ctx)
			return false
		}
	}
	e.mu.Lock()
	e.waiting = ""
	e.mu.Unlock()
	sent := e.now()
	cctx, cancel := context.WithTimeout(ctx, e.l.ttl/2)
	defer cancel()
	// The term is the create's revision, known only after it: the first
	// renewal writes it into the value.
	rev, err := e.kv.Create(cctx, e.key, e.value(0, sent))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			e.log.Debug("lease create failed", zap.String("lease", e.key), zap.Error(err))
		}
		e.observe(ctx)
		return false
	}
	e.mu.Lock()
	e.l.acquired(rev, sent)
	e.holder = Holding{Member: e.member, Since: sent, Term: rev}
	e.mu.Unlock()
	return true
}

// renew rewrites the lease with a compare-and-set on our last revision.
// It returns false once the lease is lost: another member wrote it, or no
// renewal succeeded for TTL/2.
func (e *Elector) renew(ctx context.Context) bool {
	e.mu.Lock()
	rev, term, since := e.l.rev, e.l.term, e.holder.Since
	e.mu.Unlock()
	sent := e.now()
	cctx, cancel := context.WithTimeout(ctx, e.l.renewEvery())
	defer cancel()
	nrev, err := e.kv.Update(cctx, e.key, e.value(term, since), rev)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		e.l.renewed(nrev, sent)
		return true
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyNotFound):
		// Someone else wrote the key, or it expired: it is not ours.
		e.l.lost()
		return false
	default:
		if !e.l.held(e.now()) {
			e.l.lost()
			return false
		}
		e.log.Warn("lease renewal failed; still held", zap.String("lease", e.key), zap.Error(err))
		return true
	}
}

// release deletes the lease key if it is still ours, so the next member
// need not wait for it to expire.
func (e *Elector) release() {
	e.mu.Lock()
	rev, held := e.l.rev, e.l.held(e.now())
	e.l.lost()
	e.holder = Holding{}
	e.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.kv.Delete(ctx, e.key, jetstream.LastRevision(rev)); err != nil {
		e.log.Warn("releasing the lease failed: another gateway takes over once it expires", zap.String("lease", e.key), zap.Error(err))
		return
	}
	e.log.Info("released the lease", zap.String("lease", e.key))
}

// observe reads who holds the lease now, for Status.
func (e *Elector) observe(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, e.l.renewEvery())
	defer cancel()
	var h Holding
	en, err := e.kv.Get(cctx, e.key)
	if err == nil {
		if json.Unmarshal(en.Value(), &h) == nil && h.Term == 0 {
			h.Term = en.Revision()
		}
	}
	e.mu.Lock()
	e.holder = h
	e.mu.Unlock()
}
