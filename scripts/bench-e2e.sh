#!/usr/bin/env bash
# bench-e2e.sh — the end-to-end race of issue 14: the same MQTT load through
# real Mosquitto into real InfluxDB 1.8, once through Telegraf (mqtt_consumer
# → influxdb_v2) and once through the gateway (InfluxDB store, detector and
# proofs on), in one run. What `make bench-e2e` runs.
#
#   scripts/bench-e2e.sh [e2ebench flags]     e.g. -readings 200000
#
# It builds Telegraf 1.37.2 once into $PEERS_CACHE (a few minutes: the full
# build does not resolve, so only the plugins the race needs), starts
# Mosquitto and InfluxDB with scripts/peers.sh (and leaves them running;
# `scripts/peers.sh stop` stops them) and runs cmd/e2ebench. The figures go
# to standard output; record them in docs/PERFORMANCE.md with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

TELEGRAF_VERSION=${TELEGRAF_VERSION:-1.37.2}
PEERS_CACHE=${PEERS_CACHE:-${HOME:?HOME is not set; set PEERS_CACHE}/.cache/coldchain-peers}
TELEGRAF_BIN=$PEERS_CACHE/telegraf-$TELEGRAF_VERSION/bin/telegraf

log() { printf '%s\n' "bench-e2e: $*" >&2; }

if [[ ! -x $TELEGRAF_BIN ]]; then
	gobin=$(dirname "$TELEGRAF_BIN")
	mkdir -p "$gobin"
	buildlog=$(dirname "$gobin")/build.log
	log "building Telegraf $TELEGRAF_VERSION (mqtt_consumer, json_v2, influxdb_v2 only) into $gobin; log: $buildlog"
	start=$SECONDS
	# Outside any module: the repo's go.mod plays no part.
	if ! (cd "$gobin" && GOFLAGS=-buildvcs=false GOWORK=off GOBIN=$gobin \
		go install -tags "custom,inputs.mqtt_consumer,outputs.influxdb_v2,parsers.json_v2,parsers.json,serializers.influx" \
		"github.com/influxdata/telegraf/cmd/telegraf@v$TELEGRAF_VERSION") >"$buildlog" 2>&1; then
		tail -20 "$buildlog" >&2
		log "the Telegraf build failed; see $buildlog"
		exit 1
	fi
	log "Telegraf built in $((SECONDS - start)) s"
fi

scripts/peers.sh start mosquitto influxdb
eval "$(scripts/peers.sh env mosquitto influxdb)"
exec go run ./cmd/e2ebench -telegraf "$TELEGRAF_BIN" \
	-mqtt "$COLDCHAIN_TEST_MQTT_URL" -influx "$COLDCHAIN_TEST_INFLUX_URL" "$@"
