package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// MemberBucket is the KV bucket of the members' heartbeats; a member's key
// expires when it has not written it for the bucket's TTL.
const MemberBucket = "coldchain_members"

// Member is one gateway of the cluster as its heartbeat tells.
type Member struct {
	Name string `json:"name"`
	// URL is where the member's HTTP API is reached by clients and other
	// members ("" when not advertised): a member that does not hold a
	// part's lease redirects that part's requests there.
	URL     string    `json:"url,omitempty"`
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"`
}

// Members is the heartbeat of this member and the list of all.
type Members struct {
	kv  jetstream.KeyValue
	me  Member
	ttl time.Duration
	log *zap.Logger
	now func() time.Time

	// While Run runs, a watch of the bucket keeps seen: List then reads
	// it instead of listing the bucket's keys, which costs the cluster a
	// new consumer per call (GET /v1/cluster polled by a dashboard).
	mu      sync.Mutex
	watched bool // the watch has delivered the bucket's current values
	seen    map[string]seenMember
}

// seenMember is a member's last heartbeat and when it arrived.
type seenMember struct {
	m  Member
	at time.Time
}

// OpenMembers opens the member bucket (values expire after ttl) for me.
func OpenMembers(ctx context.Context, js jetstream.JetStream, me Member, ttl time.Duration, replicas int, log *zap.Logger) (*Members, error) {
	if !validName(me.Name) {
		return nil, fmt.Errorf("cluster.member %q: use letters, digits, '-' and '_' (it is a KV key)", me.Name)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: MemberBucket, Description: "coldchain gateways: heartbeats",
		History: 1, TTL: ttl, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the member bucket %s: %w", MemberBucket, err)
	}
	return &Members{kv: kv, me: me, ttl: ttl, log: log, now: time.Now}, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}

// URL is the URL this member advertises.
func (m *Members) URL() string { return m.me.URL }

// SetURL sets the URL this member advertises; call it before Run.
func (m *Members) SetURL(u string) { m.me.URL = u }

// Run writes this member's heartbeat three times per TTL until ctx ends,
// then removes it; meanwhile it watches the others' for List.
func (m *Members) Run(ctx context.Context) error {
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		m.watch(wctx)
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()
	t := time.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		m.me.Seen = time.Now().UTC()
		b, _ := json.Marshal(m.me)
		cctx, cancel := context.WithTimeout(ctx, m.ttl/3)
		_, err := m.kv.Put(cctx, m.me.Name, b)
		cancel()
		if err != nil && ctx.Err() == nil {
			m.log.Warn("cluster heartbeat failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = m.kv.Delete(dctx, m.me.Name)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// watch keeps seen from a watch of the bucket until ctx ends; trouble
// turns the cache off (List reads the bucket) and the watch is started
// again.
func (m *Members) watch(ctx context.Context) {
	defer m.setWatched(false)
	for ctx.Err() == nil {
		w, err := m.kv.WatchAll(ctx)
		if err == nil {
			m.follow(ctx, w)
			_ = w.Stop()
		}
		m.setWatched(false)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (m *Members) follow(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			m.mu.Lock()
			switch {
			case e == nil: // the current values are all delivered
				m.watched = true
			case e.Operation() != jetstream.KeyValuePut:
				delete(m.seen, e.Key())
			default:
				var mb Member
				if json.Unmarshal(e.Value(), &mb) == nil {
					// A value the watch replays may be up to a TTL old;
					// one that arrives live is a heartbeat now.
					at := m.now()
					if c := e.Created(); !m.watched && c.Before(at) {
						at = c
					}
					if m.seen == nil {
						m.seen = map[string]seenMember{}
					}
					m.seen[e.Key()] = seenMember{m: mb, at: at}
				}
			}
			m.mu.Unlock()
		}
	}
}

func (m *Members) setWatched(on bool) {
	m.mu.Lock()
	m.watched = on
	if !on {
		m.seen = nil
	}
	m.mu.Unlock()
}

// cached returns the members the watch saw within a TTL; ok is false when
// the watch is not running.
func (m *Members) cached() (out []Member, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.watched {
		return nil, false
	}
	now := m.now()
	for _, s := range m.seen {
		if now.Sub(s.at) < m.ttl {
			out = append(out, s.m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, true
}

// List returns the members whose heartbeat has not expired, by name.
func (m *Members) List(ctx context.Context) ([]Member, error) {
	if out, ok := m.cached(); ok {
		return out, nil
	}
	keys, err := m.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Member
	for k := range keys.Keys() {
		e, err := m.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var mb Member
		if json.Unmarshal(e.Value(), &mb) == nil {
			out = append(out, mb)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Get returns the member called name, if its heartbeat is live.
func (m *Members) Get(ctx context.Context, name string) (Member, bool) {
	e, err := m.kv.Get(ctx, name)
	if err != nil {
		return Member{}, false
	}
	var mb Member
	if json.Unmarshal(e.Value(), &mb) != nil {
		return Member{}, false
	}
	return mb, true
}
