# The two commands: `make demo` runs the example Flask-SocketIO app behind
# the edge; `make test` runs every test. Both install what they need.

GO       ?= go
CADDY    := bin/caddy
GOFILES  := $(shell find . -name '*.go' -not -path './node_modules/*' -not -path './.cache/*') go.mod go.sum

.PHONY: all build deps test demo fuzz clean reload-race

all: build

build: $(CADDY)

$(CADDY): $(GOFILES)
	$(GO) build -o $@ ./cmd/xcaddy-build

deps:
	@scripts/deps.sh

# Packages whose tests are pure Go and quick: run again under the race
# detector.
RACE_PKGS := ./internal/engineio ./internal/socketio ./internal/sticky ./internal/relay \
	./internal/park ./internal/h1client ./internal/h1serve \
	./internal/flaskcookie ./internal/security ./caddymodule/edgecors ./caddymodule/flasksession \
	./caddymodule/upstreamfile \
	./caddymodule/socketiodashboard ./caddymodule/socketioclient

# Every test: unit, golden Caddyfile adapt, fuzz seeds, and the
# integration tests that run real Flask-SocketIO workers, Redis, Caddy and
# the Node socket.io-client. With CI=true a missing component fails the
# run instead of skipping. Packages run one at a time (-p 1): the
# integration tests measure failover and reload on a 2-core machine and
# must not share it with each other.
test: deps $(CADDY)
	$(GO) vet ./...
	EDGE_CADDY=$(CURDIR)/$(CADDY) $(GO) test -p 1 -count=1 -timeout 60m ./...
	# The adversarial suite once more with connection state recovery on:
	# every rule must hold on bridged sessions too.
	EDGE_TEST_RECOVER=30s EDGE_CADDY=$(CURDIR)/$(CADDY) $(GO) test -count=1 -timeout 20m -run '^TestAdversarial' ./caddymodule/socketioproxy/
	$(GO) test -count=1 -race $(RACE_PKGS)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(CI_FUZZTIME)

# Runs each fuzz target for FUZZTIME (default 30s); make test runs each
# for CI_FUZZTIME on top of its committed seed corpus. CI_FUZZTIME is a
# count of inputs, not a duration: on Go 1.26 a duration can end in a
# spurious "context deadline exceeded" failure with no crasher, a race in
# the fuzzing coordinator (golang/go#75804, fixed in Go 1.27); a count
# takes no deadline and only runs longer on a slow machine.
FUZZTIME ?= 30s
CI_FUZZTIME ?= 5000x
fuzz:
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./node_modules/' | xargs -n1 dirname | sort -u); do \
		for f in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$dir/*_test.go); do \
			echo "== $$dir $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$dir || exit 1; \
		done; \
	done

# The example app behind the edge on https://localhost:8443: two
# Flask-SocketIO workers sharing a Redis message queue. Ctrl-C stops it all.
demo: deps $(CADDY)
	@examples/demo.sh

# A rolling deploy of the demo's two workers (make demo must be running):
# each is drained at the edge, restarted and put back, one at a time.
.PHONY: demo-deploy
demo-deploy:
	@scripts/rolling-deploy.sh -a $${EDGE_ADMIN:-localhost:2019} -w 10 \
		-r 'examples/demo.sh restart {addr}' $${WORKER1:-127.0.0.1:5001} $${WORKER2:-127.0.0.1:5002}

# The edge against nginx, HAProxy and Caddy's reverse_proxy, with the Node
# socket.io client and server; writes bench/out/results.md. Takes a few
# minutes; see docs/BENCHMARKS.md.
.PHONY: bench bench-large
bench: deps $(CADDY)
	@bench/deps.sh
	$(GO) run ./bench -caddy $(CADDY)

# The same, plus the burst-open idle measurement with 20,000 connections
# (from four load processes). Takes longer and needs about 2 GB of memory.
bench-large: deps $(CADDY)
	@bench/deps.sh
	$(GO) run ./bench -caddy $(CADDY) -idle-conns-large 20000

# Scale check (5,000 sessions, 60 s) and soak (2,000 sessions, SOAK=30m)
# through the edge to two real Flask-SocketIO workers; see docs/BENCHMARKS.md.
.PHONY: scale soak
scale: deps $(CADDY)
	$(GO) run ./bench -caddy $(CADDY) -scale
soak: deps $(CADDY)
	$(GO) run ./bench -caddy $(CADDY) -soak $(or $(SOAK),30m)

# What a reload costs clients on stock Caddy (see docs/BENCHMARKS.md).
reload-race: $(CADDY)
	$(GO) run ./bench/reloadrace -caddy $(CADDY)
	$(GO) run ./bench/reloadrace -caddy $(CADDY) -keepalive

clean:
	rm -rf bin .cache
