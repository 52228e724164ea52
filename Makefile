# wshub: `make run` starts a gateway on the in-memory broker; `make test` runs every test.
GO      ?= go
PKGS    := ./...
RACE    := ./eventloop/... ./hub/... ./redis/... ./loadtest/...
FUZZTIME ?= 60s

.PHONY: run build test test-deps bench bench-e2e lint fuzz

run:
	$(GO) run ./cmd/wshub $(ARGS)

build:
	$(GO) build -o bin/wshub ./cmd/wshub
	$(GO) build -o bin/wsload ./cmd/wsload

# Redis-backed tests start their own redis-server on free ports; make sure one exists.
test-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (tests start their own on free ports)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (Debian: apt-get install -y redis-server) and re-run make test" >&2; exit 1; \
	  fi; }

test: test-deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 8m $(PKGS)
	$(GO) test -count=1 -race -timeout 8m $(RACE)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt would change:"; echo "$$out"; exit 1; }
	$(GO) vet $(PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzHandshake -fuzztime $(FUZZTIME) ./wsproto
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime $(FUZZTIME) ./wsproto
