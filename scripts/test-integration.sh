#!/usr/bin/env bash
# test-integration.sh - start the real peers (Mosquitto, nats-server,
# InfluxDB 1.8.10, Hardhat, a three-node nats-server cluster), run the
# external integration tests against them (the report read with poppler, the dashboard in headless Chromium), and
# stop the peers by PID whatever happens. Also recompiles the
# anchor contract with the pinned solc and compares it with the committed
# bytecode.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== contract: recompile and compare with the committed bytecode"
scripts/contract.sh check

echo "== tools: poppler-utils (the report) and chromium (the dashboard)"
scripts/peers.sh tools

peers=(mosquitto nats influxdb hardhat nats-1 nats-2 nats-3)
trap 'scripts/peers.sh stop "${peers[@]}"' EXIT
scripts/peers.sh start "${peers[@]}"
eval "$(scripts/peers.sh env)"
go test -tags integration -count=1 -v -timeout 30m ./integration/ ./store/influx/ ./simulator/
