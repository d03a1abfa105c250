#!/usr/bin/env bash
# chaos.sh — `make chaos` (issue 14): the simulated fleet through the real
# peers into a gateway while a seeded schedule kills the gateway with
# SIGKILL five times, restarts nats-server, stops InfluxDB and cuts the
# chain's RPC for COLDCHAIN_CHAOS_OUTAGE, and restarts Mosquitto; then every
# reading, alert, bundle, anchor and dead letter is checked
# (simulator/chaos_test.go). About 10 minutes with the defaults:
#
#   COLDCHAIN_CHAOS_SEED=1 COLDCHAIN_CHAOS_READINGS=500000 \
#   COLDCHAIN_CHAOS_WALL=3m COLDCHAIN_CHAOS_OUTAGE=2m scripts/chaos.sh
#
# It starts the peers and stops them by PID when it ends, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=(mosquitto nats influxdb hardhat)
trap 'scripts/peers.sh stop "${peers[@]}"' EXIT
scripts/peers.sh start "${peers[@]}"
eval "$(scripts/peers.sh env)"
go test -tags "integration chaos" -count=1 -v -timeout 60m -run '^TestChaos$' ./simulator/
