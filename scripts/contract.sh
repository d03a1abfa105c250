#!/usr/bin/env bash
# contract.sh - compile the anchor contract with a pinned solc-js and keep the
# committed artifacts honest.
#
#   scripts/contract.sh build   recompile anchor/evm/contract/ColdchainAnchor.sol,
#                               rewrite the ABI, the bytecode and the abigen v2
#                               Go bindings next to it
#   scripts/contract.sh check   recompile into a temporary directory and compare
#                               the creation and runtime bytecode and the ABI
#                               with the committed files; exit 1 on any mismatch
#
# solc-js $SOLC_VERSION is installed with npm (the only registry it needs) into
# $SOLC_HOME, default $HOME/.cache/coldchain-peers/solc. The compiler settings
# below are part of the build: changing any of them changes the bytecode.
set -euo pipefail
cd "$(dirname "$0")/.."

SOLC_VERSION=0.8.30
EVM_VERSION=cancun
OPTIMIZER_RUNS=200
SOLC_HOME=${SOLC_HOME:-$HOME/.cache/coldchain-peers/solc}
ABIGEN=github.com/ethereum/go-ethereum/cmd/abigen@v1.17.10

DIR=anchor/evm/contract
NAME=ColdchainAnchor

log() { printf 'contract: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install_solc() {
	local have=""
	if [[ -f $SOLC_HOME/node_modules/solc/package.json ]]; then
		have=$(node -p 'require(process.argv[1]).version' "$SOLC_HOME/node_modules/solc/package.json")
	fi
	[[ $have == "$SOLC_VERSION" ]] && return 0
	command -v npm >/dev/null 2>&1 || die "npm is required to install solc@$SOLC_VERSION"
	log "npm install solc@$SOLC_VERSION into $SOLC_HOME"
	mkdir -p "$SOLC_HOME"
	[[ -f $SOLC_HOME/package.json ]] || echo '{"private":true}' >"$SOLC_HOME/package.json"
	(cd "$SOLC_HOME" && npm install --no-audit --no-fund --save-exact "solc@$SOLC_VERSION") >&2
}

# compile OUTDIR: write OUTDIR/$NAME.abi, .bin and .bin-runtime.
compile() {
	local out=$1
	install_solc
	SOLC_MODULE=$SOLC_HOME/node_modules/solc \
	CONTRACT_SRC="$DIR/$NAME.sol" CONTRACT_NAME="$NAME" OUT="$out" \
	EVM_VERSION=$EVM_VERSION RUNS=$OPTIMIZER_RUNS WANT=$SOLC_VERSION \
	node - <<'JS'
const fs = require('fs');
const solc = require(process.env.SOLC_MODULE);
const name = process.env.CONTRACT_NAME;
const file = name + '.sol';
if (!solc.version().startsWith(process.env.WANT + '+')) {
  console.error(`contract: solc ${solc.version()} is not ${process.env.WANT}`);
  process.exit(1);
}
const input = {
  language: 'Solidity',
  sources: { [file]: { content: fs.readFileSync(process.env.CONTRACT_SRC, 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: Number(process.env.RUNS) },
    evmVersion: process.env.EVM_VERSION,
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors || []) {
  console.error(e.formattedMessage);
  if (e.severity === 'error') failed = true;
}
if (failed) process.exit(1);
const c = output.contracts[file][name];
const out = process.env.OUT;
fs.writeFileSync(`${out}/${name}.abi`, JSON.stringify(c.abi, null, 2) + '\n');
fs.writeFileSync(`${out}/${name}.bin`, c.evm.bytecode.object + '\n');
fs.writeFileSync(`${out}/${name}.bin-runtime`, c.evm.deployedBytecode.object + '\n');
console.error(`contract: compiled ${file} with solc ${solc.version()}, evm ${process.env.EVM_VERSION}`);
JS
}

build() {
	compile "$DIR"
	log "abigen --v2 -> $DIR/bindings.go"
	go run "$ABIGEN" --v2 --abi "$DIR/$NAME.abi" --bin "$DIR/$NAME.bin" \
		--pkg contract --type "$NAME" --out "$DIR/bindings.go"
}

check() {
	local tmp rc=0 f
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	compile "$tmp"
	for f in "$NAME.bin" "$NAME.bin-runtime" "$NAME.abi"; do
		if ! cmp -s "$tmp/$f" "$DIR/$f"; then
			log "MISMATCH: $DIR/$f differs from a fresh compile (run scripts/contract.sh build and commit)"
			rc=1
		fi
	done
	[[ $rc == 0 ]] && log "ok: committed bytecode and ABI match solc $SOLC_VERSION ($EVM_VERSION)"
	return $rc
}

case ${1:-} in
build) build ;;
check) check ;;
*) die "usage: $0 build|check" ;;
esac
