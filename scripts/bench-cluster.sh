#!/usr/bin/env bash
# bench-cluster.sh - what `make bench-cluster` runs: the same MQTT load
# through the real Mosquitto into 1, 2 and 3 gateways in cluster mode on a
# real three-node nats-server cluster (InfluxDB store, detector and
# anchorer on), printing readings/s and CPU per reading
# (integration.TestClusterBench). COLDCHAIN_BENCH_READINGS sets the load
# (default 20000). It starts the peers, the NATS cluster and Mosquitto with
# empty data, and stops them by PID when it ends.
# Record the figures in docs/CLUSTER.md with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=(mosquitto influxdb hardhat nats-1 nats-2 nats-3)
trap 'scripts/peers.sh stop "${peers[@]}"' EXIT
# A fresh JetStream cluster every time: streams that earlier runs filled
# make the restarted nodes recover and resync them while the first
# gateway is measured.
#
# Mosquitto too: its persistence file keeps the sessions and queued QoS 1
# messages of every earlier test and bench run (1.5 GB after a few days
# here), and it rewrites the whole file every autosave_interval (30 s) on
# its one thread: connections and deliveries stopped for seconds, which
# the runs measured as stalls.
scripts/peers.sh stop mosquitto nats-1 nats-2 nats-3
peers_dir=${PEERS_DIR:-$PWD/.peers}
rm -rf "$peers_dir"/nats-{1,2,3}/data "$peers_dir"/mosquitto/data
scripts/peers.sh start "${peers[@]}"
eval "$(scripts/peers.sh env)"
go test -tags 'integration clusterbench' -count=1 -v -timeout 60m -run TestClusterBench ./integration/ | grep -v '^{'
