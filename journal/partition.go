package journal

import (
	"hash/fnv"
	"strconv"
)

// MaxPartitions bounds cluster.partitions: a partition is a durable
// consumer and a lease, and a few dozen are plenty for a cluster of a few
// gateways.
const MaxPartitions = 256

// Partition returns the partition of a shipment among n (n > 0): FNV-1a of
// the shipment id modulo n. Every gateway of a cluster computes the same,
// so a shipment's readings land on one partition's subjects whoever
// ingests them. It is part of the stored subjects: never change it.
func Partition(shipment string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(shipment))
	return int(h.Sum32() % uint32(n))
}

// SubjectReadingIn returns the subject of a device's readings when the
// readings are split into partitions (cluster.partitions):
// coldchain.readings.{shipment}.{device}.{partition}. With partitions 0 it
// is SubjectReading. The shipment and device stay the third and fourth
// tokens, where every reader looks for them, and since the partition is a
// function of the shipment a device still has one subject, which keeps
// the append's per-subject check exact (docs/EXACTLY-ONCE.md).
func SubjectReadingIn(shipment, device string, partitions int) string {
	if partitions <= 0 {
		return SubjectReading(shipment, device)
	}
	return SubjectReading(shipment, device) + "." + strconv.Itoa(Partition(shipment, partitions))
}

// FilterPartition is the filter subject of one partition's readings.
func FilterPartition(p int) string { return "coldchain.readings.*.*." + strconv.Itoa(p) }

// FilterUnpartitioned is the filter subject of the readings stored
// without a partition token: those of a gateway before cluster.partitions
// was set. A filter token matches exactly one subject token, so it and
// FilterPartition never match the same reading.
const FilterUnpartitioned = "coldchain.readings.*.*"
