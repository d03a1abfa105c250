package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrRemoved is the cause of a context Removals cancelled: its principal
// was removed from the registry (a device or site removed, a token
// revoked) while the request was open.
var ErrRemoved = errors.New("the credential was removed from the registry")

// Removals follows identities leaving the registry, so that what they
// opened before closes with them: an MQTT session authenticated an hour
// ago, an alert stream a revoked token is still reading. Authentication
// alone only stops the next login or request.
type Removals struct {
	mu       sync.Mutex
	open     map[string]map[*openCtx]struct{} // key(kind, id) → the contexts held
	onRemove []func(Principal)
	*watch
}

type openCtx struct{ cancel context.CancelCauseFunc }

// WatchRemovals starts following removals until Stop.
func (d *Directory) WatchRemovals(ctx context.Context) (*Removals, error) {
	r := &Removals{open: map[string]map[*openCtx]struct{}{}}
	// One watch per kind: a consumer with several filters, or one on the
	// whole bucket, is refused by nats-server 2.9 (Debian's).
	var ws []*watch
	for _, k := range []Kind{KindDevice, KindSite, KindToken} {
		w, err := d.follow(ctx, string(k)+".>", func(e jetstream.KeyValueEntry) {
			if e.Operation() != jetstream.KeyValuePut {
				r.removed(Principal{Kind: k, ID: strings.TrimPrefix(e.Key(), string(k)+".")})
			}
		})
		if err != nil {
			for _, w := range ws {
				w.Stop()
			}
			return nil, fmt.Errorf("watching removals: %w", err)
		}
		ws = append(ws, w)
	}
	r.watch = joinWatches(ws)
	return r, nil
}

// joinWatches is one watch standing for several: ready when all are,
// stopped together.
func joinWatches(ws []*watch) *watch {
	j := &watch{ready: make(chan struct{}), done: make(chan struct{})}
	j.stop = func() {
		for _, w := range ws {
			w.stop()
		}
	}
	go func() {
		for _, w := range ws {
			select {
			case <-w.ready:
			case <-w.done: // stopped before it was ready
				return
			}
		}
		close(j.ready)
	}()
	go func() {
		for _, w := range ws {
			<-w.done
		}
		close(j.done)
	}()
	return j
}

// OnRemove adds fn to what is called, in the watch's goroutine, for each
// identity removed from now on (the broker disconnects its sessions).
// Removals already in the registry when the watch started are passed too,
// before Ready: nothing of theirs is open yet.
func (r *Removals) OnRemove(fn func(Principal)) {
	r.mu.Lock()
	r.onRemove = append(r.onRemove, fn)
	r.mu.Unlock()
}

// Context returns a context that is cancelled, with cause ErrRemoved, when
// p is removed from the registry, and the function that releases it when
// the request is over. The API holds one per authenticated request.
func (r *Removals) Context(parent context.Context, p Principal) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	o := &openCtx{cancel: cancel}
	k := key(p.Kind, p.ID)
	r.mu.Lock()
	set := r.open[k]
	if set == nil {
		set = map[*openCtx]struct{}{}
		r.open[k] = set
	}
	set[o] = struct{}{}
	r.mu.Unlock()
	return ctx, func() {
		r.mu.Lock()
		delete(set, o)
		if len(r.open[k]) == 0 { // set, emptied; or already dropped by a removal
			delete(r.open, k)
		}
		r.mu.Unlock()
		cancel(context.Canceled)
	}
}

// Open returns how many contexts are held for p.
func (r *Removals) Open(p Principal) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open[key(p.Kind, p.ID)])
}

func (r *Removals) removed(p Principal) {
	r.mu.Lock()
	k := key(p.Kind, p.ID)
	held := make([]*openCtx, 0, len(r.open[k]))
	for o := range r.open[k] {
		held = append(held, o)
	}
	delete(r.open, k)
	fns := append([]func(Principal){}, r.onRemove...)
	r.mu.Unlock()
	for _, fn := range fns {
		fn(p)
	}
	for _, o := range held {
		o.cancel(ErrRemoved)
	}
}
