// Package cluster makes several gateways on one NATS JetStream cluster one
// system: leases that give a part of the work to exactly one gateway at a
// time, the members' heartbeats, and the record that chains the anchor
// epochs from one anchorer to the next (docs/CLUSTER.md).
//
// Everything lives in JetStream KV buckets, so it is as available and as
// consistent as the streams themselves (replicated with Raft on a
// three-node cluster). A lease is a key in a bucket whose values expire
// after the lease TTL: the holder rewrites it with a compare-and-set on the
// revision it wrote last, and any member may create it once it has expired
// or been released. The revision of that create is the holder's term, a
// number that only grows.
package cluster

import (
	"time"
)

// lease is one member's view of one lease: the pure rules of holding it,
// with time passed in. A member holds the lease while its last successful
// write (create or renewal), counted from when the request was sent, is
// younger than half the TTL. The server lets the key expire a whole TTL
// after it stored the write, which is later than the request was sent:
// so a member stops counting itself the holder at least TTL/2 before any
// other member can create the key. That margin covers clock rate skew and
// scheduling pauses; it does not cover a holder paused for longer than
// TTL/2 in the middle of an action, which is why the anchorer also records
// each of its steps with a compare-and-set (anchor.StepLog).
type lease struct {
	ttl   time.Duration
	rev   uint64    // revision of our last successful write; 0: not held
	term  uint64    // revision of the create that made us holder
	valid time.Time // when we stop counting ourselves the holder
}

// held reports whether the member may act as the holder at now.
func (l *lease) held(now time.Time) bool { return l.rev != 0 && now.Before(l.valid) }

// acquired records a successful create, sent at sent, stored as rev.
func (l *lease) acquired(rev uint64, sent time.Time) {
	l.rev, l.term, l.valid = rev, rev, sent.Add(l.ttl/2)
}

// renewed records a successful renewal, sent at sent, stored as rev.
func (l *lease) renewed(rev uint64, sent time.Time) {
	if l.rev == 0 {
		return
	}
	l.rev, l.valid = rev, sent.Add(l.ttl/2)
}

// lost forgets the lease: another member wrote it, or it ran out.
func (l *lease) lost() { l.rev, l.term, l.valid = 0, 0, time.Time{} }

// renewEvery is how often a holder rewrites the lease, and a member that
// does not hold it tries to create it: six times per TTL, so a renewal can
// fail twice in a row and the lease is still held.
func (l *lease) renewEvery() time.Duration { return l.ttl / 6 }
