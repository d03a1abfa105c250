# coldchain — the front door. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 20s

.PHONY: help run serve build test test-integration test-cluster-fleet chaos bench bench-e2e bench-cluster fuzz lint clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

run: ## the gateway with everything embedded plus a small simulated fleet: readings flow, an alert fires, a proof verifies
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/coldchain demo

serve: ## the gateway alone, everything embedded (MQTT :1883, NATS :4222, HTTP :8080, chain :8545, data in ./data)
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/coldchain serve

build: ## build bin/coldchain with the version stamped in
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/coldchain ./cmd/coldchain

test: ## unit and in-process integration tests (embedded broker, NATS)
	$(GO) test -count=1 $(PKGS)

test-integration: ## tests against real Mosquitto and nats-server (installed and started by scripts/peers.sh)
	scripts/test-integration.sh

test-cluster-fleet: ## the simulated fleet through three gateways on the real three-node cluster, against the ground truth (about 5 min; not in test-integration yet, docs/CLUSTER.md)
	scripts/test-cluster-fleet.sh

chaos: ## the chaos suite: 500,000 readings through the real peers while the gateway is killed and the peers fail (about 10 min; not in make test)
	scripts/chaos.sh

bench: ## every benchmark of docs/PERFORMANCE.md: ingest, alert latency, codec, Merkle, detector, journal, store, proofs, gas
	$(GO) run ./cmd/ingestbench
	$(GO) run ./cmd/alertbench
	$(GO) test -run '^$$' -bench . -benchmem ./record/ ./merkle/ ./excursion/ ./journal/ ./anchor/ ./device/ ./alert/ ./report/
	$(GO) test -run '^$$' -bench . -benchtime 20x ./store/pebble/
	$(GO) test -run '^$$' -bench AnchorGas -benchtime 1x ./anchor/evm/

bench-e2e: ## the end-to-end race against Telegraf: 1M MQTT readings through Mosquitto into InfluxDB 1.8 (builds Telegraf once, starts the peers)
	scripts/bench-e2e.sh

bench-cluster: ## readings/s and CPU per reading with 1, 2 and 3 gateways in cluster mode on the real three-node nats-server cluster (starts the peers; docs/CLUSTER.md)
	scripts/bench-cluster.sh

fuzz: ## run every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m is the long run, docs/RELIABILITY.md)
	@set -e; for pkg in ./record ./merkle ./excursion ./anchor/bundle ./report; do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -timeout 0 $$pkg; \
	  done; done

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet -tags integration $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 -tags integration $(PKGS)

clean: ## remove build output and the embedded data dir
	rm -rf bin data
