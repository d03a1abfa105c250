#!/usr/bin/env bash
# peers.sh - install, start, stop and describe the real external servers
# ("peers") that the gateway's integration tests talk to.
#
# Usage: scripts/peers.sh {install|start|stop|restart|status|env|help} [peer...]
#        scripts/peers.sh tools
#   peers: mosquitto nats influxdb hardhat nats-1 nats-2 nats-3
#          (default: all of them; nats-cluster names the last three, a
#          three-node JetStream cluster for the cluster-mode tests)
#
#   tools    install the command-line tools the integration tests use
#            that are not servers: poppler-utils (pdftotext, pdftoppm), to
#            read and render the traceability report, and chromium, to drive
#            the dashboard headless
#
#   install  install what is missing (apt for mosquitto and nats-server,
#            `go install` for InfluxDB 1.8, npm for Hardhat 2)
#   start    install if needed, start, wait until each peer answers (no-op
#            for a peer that is already running)
#   stop     TERM the PID recorded in the peer's pid file, KILL after 10 s
#   restart  stop then start
#   status   one line per peer; exit status 1 if any is not running/answering
#   env      print `export VAR=value` lines for the tests:
#              eval "$(scripts/peers.sh env)"
#
# Everything listens on 127.0.0.1 only. Ports (overridable by env):
#   mosquitto  PEER_MOSQUITTO_PORT    18830
#   nats       PEER_NATS_PORT         14222  (+ monitoring PEER_NATS_MONITOR_PORT 18222)
#   influxdb   PEER_INFLUX_PORT       18086  (+ RPC PEER_INFLUX_RPC_PORT 18088)
#   hardhat    PEER_HARDHAT_PORT      18545
#   nats-N     PEER_NATS_CLUSTER_PORT+N  14230+N (routes 16230+N, monitoring 18230+N)
#
# State (config, data, log, pid file; one subdirectory per peer) lives in
# $PEERS_DIR, default <repo>/.peers. Built/downloaded tools are cached in
# $PEERS_CACHE, default $HOME/.cache/coldchain-peers.
# $PEERS_START_TIMEOUT (seconds, default 60) bounds the wait in `start`.
# $PEER_INFLUX_VERSION (default 1.8.10) and $PEER_HARDHAT_VERSION (default 2,
# or an exact version such as 2.29.1) choose what `install` builds or fetches.
#
# Processes are only ever stopped by the PID in their pid file, and only if
# that PID still runs the command line this script started; never by name.

set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

PEERS_DIR=${PEERS_DIR:-$repo_root/.peers}
PEERS_CACHE=${PEERS_CACHE:-${HOME:?HOME is not set; set PEERS_CACHE}/.cache/coldchain-peers}
PEERS_START_TIMEOUT=${PEERS_START_TIMEOUT:-60}
# Peers are started from their own directory: make the paths absolute.
[[ $PEERS_DIR == /* ]] || PEERS_DIR=$PWD/$PEERS_DIR
[[ $PEERS_CACHE == /* ]] || PEERS_CACHE=$PWD/$PEERS_CACHE

PEER_MOSQUITTO_PORT=${PEER_MOSQUITTO_PORT:-18830}
PEER_NATS_PORT=${PEER_NATS_PORT:-14222}
PEER_NATS_MONITOR_PORT=${PEER_NATS_MONITOR_PORT:-18222}
PEER_INFLUX_PORT=${PEER_INFLUX_PORT:-18086}
PEER_INFLUX_RPC_PORT=${PEER_INFLUX_RPC_PORT:-18088}
PEER_HARDHAT_PORT=${PEER_HARDHAT_PORT:-18545}
PEER_NATS_CLUSTER_PORT=${PEER_NATS_CLUSTER_PORT:-14230}
PEER_NATS_ROUTE_PORT=${PEER_NATS_ROUTE_PORT:-16230}
PEER_NATS_CLUSTER_MONITOR_PORT=${PEER_NATS_CLUSTER_MONITOR_PORT:-18230}

INFLUX_VERSION=${PEER_INFLUX_VERSION:-1.8.10}
INFLUX_DB=coldchain
INFLUX_RP=autogen
HARDHAT_VERSION=${PEER_HARDHAT_VERSION:-2}
HARDHAT_CHAIN_ID=31337
# Private key of Hardhat's first well-known development account
# 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (printed by `hardhat node`;
# public knowledge, test only).
HARDHAT_DEV_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80

ALL_PEERS=(mosquitto nats influxdb hardhat nats-1 nats-2 nats-3)
CLUSTER_NODES=(nats-1 nats-2 nats-3)
HOST=127.0.0.1

INFLUX_BIN=$PEERS_CACHE/influxdb-$INFLUX_VERSION/bin/influxd
HARDHAT_HOME=$PEERS_CACHE/hardhat
HARDHAT_BIN=$HARDHAT_HOME/node_modules/.bin/hardhat

# Hardhat must never prompt or phone home.
export HARDHAT_DISABLE_TELEMETRY_PROMPT=true
export CI=${CI:-true}

log() { printf '%s\n' "peers: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

peer_dir() { printf '%s/%s\n' "$PEERS_DIR" "$1"; }
pid_file() { printf '%s/%s.pid\n' "$(peer_dir "$1")" "$1"; }
log_file() { printf '%s/%s.log\n' "$(peer_dir "$1")" "$1"; }

# node_index nats-N: N.
node_index() { echo "${1#nats-}"; }

peer_port() {
	case $1 in
	nats-[123]) echo $((PEER_NATS_CLUSTER_PORT + $(node_index "$1"))) ;;
	mosquitto) echo "$PEER_MOSQUITTO_PORT" ;;
	nats) echo "$PEER_NATS_PORT" ;;
	influxdb) echo "$PEER_INFLUX_PORT" ;;
	hardhat) echo "$PEER_HARDHAT_PORT" ;;
	esac
}

peer_port_var() {
	case $1 in
	nats-[123]) echo PEER_NATS_CLUSTER_PORT ;;
	mosquitto) echo PEER_MOSQUITTO_PORT ;;
	nats) echo PEER_NATS_PORT ;;
	influxdb) echo PEER_INFLUX_PORT ;;
	hardhat) echo PEER_HARDHAT_PORT ;;
	esac
}

# A string that must appear in /proc/PID/cmdline of the process we started,
# so a recycled PID is never mistaken for (or killed as) one of our peers.
peer_marker() {
	case $1 in
	mosquitto) echo "$(peer_dir mosquitto)/mosquitto.conf" ;;
	nats) echo "$(peer_dir nats)/nats.conf" ;;
	nats-[123]) echo "$(peer_dir "$1")/$1.conf" ;;
	influxdb) echo "$(peer_dir influxdb)/influxdb.conf" ;;
	hardhat) echo "$HARDHAT_BIN" ;;
	esac
}

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# apt_install PKG: install a Debian package, running `apt-get update` only if
# the plain install fails (stale or empty package lists).
apt_install() {
	local pkg=$1
	log "installing Debian package $pkg"
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 "$pkg" >&2; then
		log "apt-get install $pkg failed; running apt-get update and retrying"
		as_root apt-get update -q >&2
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 "$pkg" >&2
	fi
}

# find_sbin NAME: path of a binary that Debian installs in /usr/sbin, which a
# non-root PATH may lack.
find_sbin() {
	local name=$1 p
	if p=$(command -v "$name" 2>/dev/null); then
		echo "$p"
		return 0
	fi
	for p in /usr/sbin/"$name" /usr/local/sbin/"$name" /usr/bin/"$name"; do
		if [[ -x $p ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

need_cmd() {
	local cmd=$1 pkg=${2:-$1}
	command -v "$cmd" >/dev/null 2>&1 || apt_install "$pkg"
}

# ---------------------------------------------------------------- processes

# pid_alive PID: the process exists and is not a zombie (PID 1 on some
# sandboxes does not reap orphans, so `kill -0` alone is not enough).
pid_alive() {
	local pid=$1 state
	kill -0 "$pid" 2>/dev/null || return 1
	state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ $state != Z && $state != X ]]
}

# peer_pid PEER: print the PID from the pid file if that process is alive and
# is the one we started; otherwise fail (and drop a stale pid file).
peer_pid() {
	local peer=$1 pf pid cmdline
	pf=$(pid_file "$peer")
	[[ -f $pf ]] || return 1
	pid=$(<"$pf")
	if [[ ! $pid =~ ^[0-9]+$ ]] || ! pid_alive "$pid"; then
		rm -f "$pf"
		return 1
	fi
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	if [[ $cmdline != *"$(peer_marker "$peer")"* ]]; then
		log "$peer: pid $pid from $pf is now another process ($cmdline); ignoring it"
		rm -f "$pf"
		return 1
	fi
	echo "$pid"
}

tcp_open() {
	local port=$1
	# shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$port" 2>/dev/null
}

http_ok() {
	curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null
}

hardhat_chain_id() {
	curl -fsS --max-time 2 -X POST -H 'Content-Type: application/json' \
		--data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' \
		"http://$HOST:$PEER_HARDHAT_PORT" 2>/dev/null
}

# peer_answers PEER: the peer's protocol-level readiness check.
peer_answers() {
	case $1 in
	mosquitto) tcp_open "$PEER_MOSQUITTO_PORT" ;;
	nats)
		tcp_open "$PEER_NATS_PORT" &&
			http_ok "http://$HOST:$PEER_NATS_MONITOR_PORT/healthz"
		;;
	nats-[123])
		# Not /healthz: a node's JetStream is healthy only once the cluster
		# has a quorum, and the nodes start one after another.
		tcp_open "$(peer_port "$1")" &&
			http_ok "http://$HOST:$((PEER_NATS_CLUSTER_MONITOR_PORT + $(node_index "$1")))/varz"
		;;
	influxdb) http_ok "http://$HOST:$PEER_INFLUX_PORT/ping" ;;
	hardhat)
		local out
		out=$(hardhat_chain_id) || return 1
		[[ $out == *'"result":"0x7a69"'* ]]
		;;
	esac
}

# stop_pid PEER PID: TERM, wait up to 10 s, then KILL. Only PID is signalled.
stop_pid() {
	local peer=$1 pid=$2 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	log "$peer: pid $pid still alive 10 s after TERM; sending KILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	log "$peer: pid $pid survived KILL"
	return 1
}

show_log_tail() {
	local lf
	lf=$(log_file "$1")
	if [[ -f $lf ]]; then
		log "last lines of $lf:"
		tail -n 40 "$lf" | sed 's/^/    /' >&2
	fi
}

# ------------------------------------------------------------------ install

install_mosquitto() {
	if find_sbin mosquitto >/dev/null; then
		log "mosquitto: installed ($(find_sbin mosquitto))"
		return 0
	fi
	apt_install mosquitto
	find_sbin mosquitto >/dev/null || die "mosquitto: binary not found after install"
	# Debian's package may start its own system broker on 1883 (on machines
	# with systemd, or without a policy-rc.d that forbids it). We never use
	# it and never stop it; it does not conflict with our port.
	if tcp_open 1883; then
		log "mosquitto: note: a system broker is listening on 1883; it is left alone and not used"
	fi
}

install_nats() {
	if find_sbin nats-server >/dev/null; then
		log "nats: installed ($(find_sbin nats-server))"
		return 0
	fi
	apt_install nats-server
	find_sbin nats-server >/dev/null || die "nats: nats-server not found after install"
}

install_influxdb() {
	if [[ -x $INFLUX_BIN ]]; then
		log "influxdb: installed ($INFLUX_BIN)"
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "influxdb: go is required to build influxd"
	local gobin tmp pid start elapsed next=15
	gobin=$(dirname "$INFLUX_BIN")
	mkdir -p "$gobin"
	tmp=$(dirname "$gobin")/build.log
	log "influxdb: building influxd $INFLUX_VERSION with $(go version | awk '{print $3}') into $gobin"
	log "influxdb: this takes a minute or two (download + compile); build log: $tmp"
	start=$SECONDS
	# Build outside any module so the repo's go.mod plays no part. GOFLAGS
	# from the caller (e.g. -mod=vendor) would break `go install pkg@version`.
	(cd "$gobin" && GOFLAGS=-buildvcs=false GOWORK=off GOBIN=$gobin \
		go install -ldflags "-X main.version=$INFLUX_VERSION" \
		"github.com/influxdata/influxdb/cmd/influxd@v$INFLUX_VERSION") >"$tmp" 2>&1 &
	pid=$!
	while pid_alive "$pid"; do
		sleep 1
		elapsed=$((SECONDS - start))
		if ((elapsed >= next)); then
			log "influxdb: still building... ${elapsed}s ($(grep -c '^go: downloading' "$tmp" || true) modules downloaded)"
			next=$((next + 15))
		fi
	done
	if ! wait "$pid"; then
		log "influxdb: build failed after $((SECONDS - start))s; last lines of $tmp:"
		grep -v '^go: downloading' "$tmp" | tail -n 40 | sed 's/^/    /' >&2
		exit 1
	fi
	[[ -x $INFLUX_BIN ]] || die "influxdb: build finished but $INFLUX_BIN is missing"
	log "influxdb: built in $((SECONDS - start))s: $("$INFLUX_BIN" version)"
}

hardhat_installed() {
	[[ -x $HARDHAT_BIN ]] || return 1
	local v
	v=$(node -p 'require(process.argv[1]).version' "$HARDHAT_HOME/node_modules/hardhat/package.json" 2>/dev/null) || return 1
	[[ $HARDHAT_VERSION == *.* ]] && [[ $v == "$HARDHAT_VERSION" ]] && return 0
	[[ $v == "$HARDHAT_VERSION".* ]]
}

write_hardhat_project() {
	mkdir -p "$HARDHAT_HOME"
	cat >"$HARDHAT_HOME/package.json" <<'EOF'
{
  "name": "coldchain-peer-hardhat",
  "version": "0.0.0",
  "private": true,
  "description": "Local Hardhat node for coldchain integration tests (generated by scripts/peers.sh)"
}
EOF
	# Hardhat 2 refuses to run without a config file. No solidity section:
	# `hardhat node` compiles nothing, so no compiler is ever downloaded.
	cat >"$HARDHAT_HOME/hardhat.config.js" <<EOF
// Generated by coldchain scripts/peers.sh; rewritten on install.
module.exports = {
  networks: {
    hardhat: {
      chainId: $HARDHAT_CHAIN_ID,
      // Mine every transaction immediately, no interval mining.
      mining: { auto: true, interval: 0 },
    },
  },
};
EOF
}

install_hardhat() {
	command -v node >/dev/null 2>&1 || die "hardhat: node is required"
	command -v npm >/dev/null 2>&1 || die "hardhat: npm is required"
	if hardhat_installed; then
		write_hardhat_project
		log "hardhat: installed ($HARDHAT_HOME, hardhat $(node -p 'require(process.argv[1]).version' "$HARDHAT_HOME/node_modules/hardhat/package.json"))"
		return 0
	fi
	write_hardhat_project
	log "hardhat: npm install hardhat@$HARDHAT_VERSION into $HARDHAT_HOME"
	local start=$SECONDS
	(cd "$HARDHAT_HOME" && npm install --no-audit --no-fund --loglevel=error \
		--save-exact "hardhat@$HARDHAT_VERSION") >&2
	hardhat_installed || die "hardhat: install finished but $HARDHAT_BIN is missing"
	log "hardhat: installed hardhat $(node -p 'require(process.argv[1]).version' "$HARDHAT_HOME/node_modules/hardhat/package.json") in $((SECONDS - start))s"
}

# ---------------------------------------------------------- configuration

write_mosquitto_conf() {
	local d
	d=$(peer_dir mosquitto)
	mkdir -p "$d/data"
	cat >"$d/mosquitto.conf" <<EOF
# Generated by scripts/peers.sh; rewritten on every start.
per_listener_settings false
listener $PEER_MOSQUITTO_PORT $HOST
allow_anonymous true

# Run as whoever starts us (as root, mosquitto would otherwise switch to the
# "mosquitto" user, which cannot write this directory).
user $(id -un)

# Durable broker state. Persistent sessions (clean session = false) and the
# QoS 1 messages queued for them are written to disk and survive a broker
# restart. The queue limits are raised far above the defaults (inflight 20,
# queued 1000) so a gateway that is down for a while still gets every QoS 1
# message queued for it when it reconnects, instead of the broker silently
# dropping everything past the 1000th message.
persistence true
persistence_location $d/data/
autosave_interval 30
max_inflight_messages 1000
max_queued_messages 1000000
max_queued_bytes 0
persistent_client_expiration 7d

log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %Y-%m-%dT%H:%M:%S
connection_messages true
EOF
}

write_nats_conf() {
	local d
	d=$(peer_dir nats)
	mkdir -p "$d/data"
	cat >"$d/nats.conf" <<EOF
# Generated by scripts/peers.sh; rewritten on every start.
# Host and ports are repeated on the command line (-a -p -m); JetStream and
# its store dir come only from the command line (-js -sd), since nats-server
# rejects a store_dir given both here and by -sd.
server_name: coldchain_test
listen: $HOST:$PEER_NATS_PORT
http: $HOST:$PEER_NATS_MONITOR_PORT
max_payload: 8MB
EOF
}

write_cluster_node_conf() {
	local node=$1 d i n routes=""
	d=$(peer_dir "$node")
	i=$(node_index "$node")
	mkdir -p "$d/data"
	for n in 1 2 3; do
		[[ $n == "$i" ]] && continue
		routes+="    nats-route://$HOST:$((PEER_NATS_ROUTE_PORT + n))"$'\n'
	done
	cat >"$d/$node.conf" <<EOF
# Generated by scripts/peers.sh; rewritten on every start. One node of a
# three-node JetStream cluster on loopback (routes without auth: loopback
# only, test only).
server_name: $node
listen: $HOST:$((PEER_NATS_CLUSTER_PORT + i))
http: $HOST:$((PEER_NATS_CLUSTER_MONITOR_PORT + i))
max_payload: 8MB
cluster {
  name: coldchain_test_cluster
  listen: $HOST:$((PEER_NATS_ROUTE_PORT + i))
  routes: [
$routes  ]
}
EOF
}

write_influxdb_conf() {
	local d
	d=$(peer_dir influxdb)
	mkdir -p "$d/meta" "$d/data" "$d/wal"
	cat >"$d/influxdb.conf" <<EOF
# Generated by scripts/peers.sh; rewritten on every start.
reporting-disabled = true
# RPC service (backup/restore), loopback only.
bind-address = "$HOST:$PEER_INFLUX_RPC_PORT"

[meta]
  dir = "$d/meta"

[data]
  dir = "$d/data"
  wal-dir = "$d/wal"
  query-log-enabled = false

[monitor]
  # No _internal database writes.
  store-enabled = false

[http]
  enabled = true
  bind-address = "$HOST:$PEER_INFLUX_PORT"
  auth-enabled = false
  flux-enabled = true
  log-enabled = true

[logging]
  level = "info"
EOF
}

# ------------------------------------------------------------- start/stop

# launch PEER WORKDIR CMD...: run CMD from WORKDIR in the background with all
# output in the peer's log, and record exactly its PID (the subshell execs
# nohup, which execs CMD, so $! is the server process itself).
launch() {
	local peer=$1 workdir=$2
	shift 2
	local lf
	lf=$(log_file "$peer")
	printf '\n==== %s start: %s\n' "$(date -Is)" "$*" >>"$lf"
	(cd "$workdir" && exec nohup "$@") </dev/null >>"$lf" 2>&1 &
	echo "$!" >"$(pid_file "$peer")"
}

launch_peer() {
	local peer=$1 d
	d=$(peer_dir "$peer")
	case $peer in
	mosquitto)
		write_mosquitto_conf
		launch mosquitto "$d" "$(find_sbin mosquitto)" -c "$d/mosquitto.conf"
		;;
	nats)
		write_nats_conf
		launch nats "$d" "$(find_sbin nats-server)" -c "$d/nats.conf" \
			-a "$HOST" -p "$PEER_NATS_PORT" -m "$PEER_NATS_MONITOR_PORT" \
			-js -sd "$d/data"
		;;
	nats-[123])
		write_cluster_node_conf "$peer"
		launch "$peer" "$d" "$(find_sbin nats-server)" -c "$d/$peer.conf" -js -sd "$d/data"
		;;
	influxdb)
		write_influxdb_conf
		launch influxdb "$d" "$INFLUX_BIN" run -config "$d/influxdb.conf"
		;;
	hardhat)
		# `npx hardhat node` would leave npm as the recorded PID with hardhat
		# as its child; running the same bin directly makes $! the server.
		launch hardhat "$HARDHAT_HOME" "$HARDHAT_BIN" node --hostname "$HOST" --port "$PEER_HARDHAT_PORT"
		;;
	esac
}

# After the peer answers: one-time setup that the tests rely on.
post_start() {
	case $1 in
	influxdb)
		curl -fsS --max-time 10 -X POST "http://$HOST:$PEER_INFLUX_PORT/query" \
			--data-urlencode "q=CREATE DATABASE $INFLUX_DB" -o /dev/null ||
			{
				log "influxdb: CREATE DATABASE $INFLUX_DB failed"
				return 1
			}
		log "influxdb: database $INFLUX_DB ready (bucket $INFLUX_DB/$INFLUX_RP)"
		;;
	esac
}

start_peer() {
	local peer=$1 pid port start deadline
	port=$(peer_port "$peer")
	if pid=$(peer_pid "$peer"); then
		log "$peer: already running (pid $pid) on $HOST:$port"
		return 0
	fi
	"install_${peer%-[123]}"
	if tcp_open "$port"; then
		log "$peer: port $HOST:$port is already taken by a process this script did not start (set $(peer_port_var "$peer"))"
		return 1
	fi
	if [[ $peer == nats ]] && tcp_open "$PEER_NATS_MONITOR_PORT"; then
		log "nats: monitoring port $HOST:$PEER_NATS_MONITOR_PORT is already taken (set PEER_NATS_MONITOR_PORT)"
		return 1
	fi
	if [[ $peer == influxdb ]] && tcp_open "$PEER_INFLUX_RPC_PORT"; then
		log "influxdb: RPC port $HOST:$PEER_INFLUX_RPC_PORT is already taken (set PEER_INFLUX_RPC_PORT)"
		return 1
	fi
	mkdir -p "$(peer_dir "$peer")"
	launch_peer "$peer"
	pid=$(<"$(pid_file "$peer")")
	start=$SECONDS
	deadline=$((SECONDS + PEERS_START_TIMEOUT))
	until peer_answers "$peer"; do
		if ! pid_alive "$pid"; then
			log "$peer: process $pid exited during startup"
			rm -f "$(pid_file "$peer")"
			show_log_tail "$peer"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "$peer: no answer on $HOST:$port within ${PEERS_START_TIMEOUT}s; stopping pid $pid"
			stop_pid "$peer" "$pid" || true
			rm -f "$(pid_file "$peer")"
			show_log_tail "$peer"
			return 1
		fi
		sleep 0.2
	done
	if ! post_start "$peer"; then
		show_log_tail "$peer"
		return 1
	fi
	log "$peer: started (pid $pid) on $HOST:$port in $((SECONDS - start))s"
}

stop_peer() {
	local peer=$1 pid
	if ! pid=$(peer_pid "$peer"); then
		log "$peer: not running"
		return 0
	fi
	if stop_pid "$peer" "$pid"; then
		rm -f "$(pid_file "$peer")"
		log "$peer: stopped (pid $pid)"
	else
		return 1
	fi
}

status_peer() {
	local peer=$1 pid port installed=yes
	port=$(peer_port "$peer")
	case $peer in
	mosquitto) find_sbin mosquitto >/dev/null || installed=no ;;
	nats | nats-[123]) find_sbin nats-server >/dev/null || installed=no ;;
	influxdb) [[ -x $INFLUX_BIN ]] || installed=no ;;
	hardhat) hardhat_installed || installed=no ;;
	esac
	if pid=$(peer_pid "$peer"); then
		if peer_answers "$peer"; then
			printf '%-10s running  pid %-7s %s:%s  answering\n' "$peer" "$pid" "$HOST" "$port"
			return 0
		fi
		printf '%-10s running  pid %-7s %s:%s  NOT answering (log: %s)\n' "$peer" "$pid" "$HOST" "$port" "$(log_file "$peer")"
		return 1
	fi
	printf '%-10s stopped  (installed: %s)\n' "$peer" "$installed"
	return 1
}

env_peer() {
	local -a kv
	case $1 in
	mosquitto)
		# The binary too: the export-mosquitto test starts a second,
		# password-protected broker of its own.
		kv=(COLDCHAIN_TEST_MQTT_URL "tcp://$HOST:$PEER_MOSQUITTO_PORT"
			COLDCHAIN_TEST_MOSQUITTO_BIN "$(find_sbin mosquitto)")
		;;
	nats)
		# The binary too: the TLS test starts a nats-server of its own.
		kv=(COLDCHAIN_TEST_NATS_URL "nats://$HOST:$PEER_NATS_PORT"
			COLDCHAIN_TEST_NATS_BIN "$(find_sbin nats-server)")
		;;
	influxdb)
		# InfluxDB 1.8 with auth disabled: the v2-compatibility API
		# (/api/v2/write, /api/v2/query) ignores the token and the org; the
		# token is empty ("user:password" would only matter with auth on).
		# The bucket is "database/retention-policy".
		kv=(COLDCHAIN_TEST_INFLUX_URL "http://$HOST:$PEER_INFLUX_PORT"
			COLDCHAIN_TEST_INFLUX_TOKEN ""
			COLDCHAIN_TEST_INFLUX_ORG "$INFLUX_DB"
			COLDCHAIN_TEST_INFLUX_BUCKET "$INFLUX_DB/$INFLUX_RP"
			COLDCHAIN_TEST_INFLUXD_BIN "$INFLUX_BIN")
		;;
	nats-1)
		# The whole cluster's URLs once, with the first node; the cluster
		# test stops and starts single nodes with this script.
		kv=(COLDCHAIN_TEST_NATS_CLUSTER_URLS "nats://$HOST:$((PEER_NATS_CLUSTER_PORT + 1)),nats://$HOST:$((PEER_NATS_CLUSTER_PORT + 2)),nats://$HOST:$((PEER_NATS_CLUSTER_PORT + 3))"
			COLDCHAIN_TEST_PEERS_SCRIPT "$script_dir/peers.sh"
			COLDCHAIN_TEST_PEERS_DIR "$PEERS_DIR")
		;;
	nats-[23]) kv=() ;;
	hardhat)
		kv=(COLDCHAIN_TEST_EVM_RPC_URL "http://$HOST:$PEER_HARDHAT_PORT"
			COLDCHAIN_TEST_EVM_KEY "$HARDHAT_DEV_KEY"
			COLDCHAIN_TEST_EVM_CHAIN_ID "$HARDHAT_CHAIN_ID")
		;;
	esac
	local i
	for ((i = 0; i < ${#kv[@]}; i += 2)); do
		printf 'export %s=%q\n' "${kv[i]}" "${kv[i + 1]}"
	done
}

# ------------------------------------------------------------------- main

main() {
	local cmd=${1:-help}
	[[ $# -gt 0 ]] && shift
	local p a ok
	local -a peers=()
	for p in "$@"; do
		if [[ $p == nats-cluster ]]; then peers+=("${CLUSTER_NODES[@]}"); else peers+=("$p"); fi
	done
	[[ ${#peers[@]} -gt 0 ]] || peers=("${ALL_PEERS[@]}")
	for p in "${peers[@]}"; do
		ok=no
		for a in "${ALL_PEERS[@]}"; do [[ $p == "$a" ]] && ok=yes; done
		[[ $ok == yes ]] || die "unknown peer '$p' (known: ${ALL_PEERS[*]})"
	done

	local rc=0
	case $cmd in
	tools)
		command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null || apt_install poppler-utils || rc=1
		command -v chromium >/dev/null || apt_install chromium || rc=1
		;;
	install)
		need_cmd curl
		for p in "${peers[@]}"; do "install_${p%-[123]}" || rc=1; done
		;;
	start)
		need_cmd curl
		mkdir -p "$PEERS_DIR"
		for p in "${peers[@]}"; do start_peer "$p" || rc=1; done
		;;
	stop)
		for p in "${peers[@]}"; do stop_peer "$p" || rc=1; done
		;;
	restart)
		for p in "${peers[@]}"; do stop_peer "$p" || rc=1; done
		need_cmd curl
		mkdir -p "$PEERS_DIR"
		for p in "${peers[@]}"; do start_peer "$p" || rc=1; done
		;;
	status)
		for p in "${peers[@]}"; do status_peer "$p" || rc=1; done
		;;
	env)
		for p in "${peers[@]}"; do env_peer "$p"; done
		;;
	help | -h | --help)
		usage
		;;
	*)
		usage >&2
		die "unknown command '$cmd'"
		;;
	esac
	return "$rc"
}

main "$@"
