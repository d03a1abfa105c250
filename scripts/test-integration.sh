#!/usr/bin/env bash
# test-integration.sh - start the real peers, run the external integration
# tests against them, stop the peers by PID whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

peers=(mosquitto nats)
trap 'scripts/peers.sh stop "${peers[@]}"' EXIT
scripts/peers.sh start "${peers[@]}"
eval "$(scripts/peers.sh env)"
go test -tags integration -count=1 -v -timeout 20m ./integration/
