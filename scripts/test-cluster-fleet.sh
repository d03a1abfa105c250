#!/usr/bin/env bash
# test-cluster-fleet.sh - what `make test-cluster-fleet` runs: the
# simulated fleet (200 shipments, every scenario twice) through the real
# Mosquitto into three gateways with four partitions on a real three-node
# nats-server cluster, InfluxDB and Hardhat, with a gateway killed and a
# NATS node restarted mid-run, checked against the simulator's ground
# truth (integration.TestClusterFleet, about 5 minutes). Not part of
# `make test-integration` yet: one run of six failed on the partition
# detectors' known divergence after a handover (docs/CLUSTER.md, "What is
# not built"). It starts the peers, the NATS cluster and
# Mosquitto with empty data, and stops them by PID when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=(mosquitto influxdb hardhat nats-1 nats-2 nats-3)
trap 'scripts/peers.sh stop "${peers[@]}"' EXIT
# Fresh cluster and broker data, as for make bench-cluster: earlier runs'
# streams and queued sessions slow the start and the restarted node.
scripts/peers.sh stop mosquitto nats-1 nats-2 nats-3
peers_dir=${PEERS_DIR:-$PWD/.peers}
rm -rf "$peers_dir"/nats-{1,2,3}/data "$peers_dir"/mosquitto/data
scripts/peers.sh start "${peers[@]}"
eval "$(scripts/peers.sh env)"
COLDCHAIN_TEST_CLUSTER_FLEET=1 go test -tags integration -count=1 -v -timeout 30m -run TestClusterFleet ./integration/ | grep -v '^{'
