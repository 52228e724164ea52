# wshub: `make run` starts a gateway on the in-memory broker; `make test` runs every test.
GO      ?= go
PKGS    := ./...
RACE    := ./eventloop/... ./hub/... ./redis/... ./loadtest/...
FUZZTIME ?= 60s
# staticcheck at a pinned version through go run: a fresh machine needs
# nothing but the module proxy.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run build test test-deps bench bench-e2e lint fuzz

run:
	$(GO) run ./cmd/wshub $(ARGS)

build:
	$(GO) build -o bin/wshub ./cmd/wshub
	$(GO) build -o bin/wsload ./cmd/wsload

# Tests start their own redis-server on free ports and drive the gateway with
# third-party clients (python3-websockets, headless Chromium; npm packages are
# fetched by the tests themselves): make sure the Debian packages exist.
test-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing="redis-server redis-tools"; \
	/usr/bin/python3 -c "import websockets" >/dev/null 2>&1 || missing="$$missing python3-websockets"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (tests start their own redis-server on free ports)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing test dependencies:$$missing -- install them (Debian: apt-get install -y$$missing) and re-run make test" >&2; exit 1; \
	  fi; \
	fi

test: test-deps lint
	$(GO) test -count=1 -timeout 8m $(PKGS)
	$(GO) test -count=1 -race -timeout 8m $(RACE)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# wshub against the goroutine-per-connection reference hub, same scenarios,
# alternating, side-by-side table; then, when redis-server is installed, fan-out
# across two instances on Redis against one in-memory instance (about 2.5 minutes;
# ARGS="--rounds 1" is quicker).
bench-e2e:
	$(GO) run ./bench/e2e $(ARGS)

# gofmt, go mod tidy, go vet and staticcheck must have nothing to say.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt would change:"; echo "$$out"; exit 1; }
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { echo "go mod tidy would change go.mod/go.sum:"; $(GO) mod tidy -diff; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# Every fuzzer, FUZZTIME each (go test -fuzz takes one target at a time).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzHandshake$$' -fuzztime $(FUZZTIME) ./wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzFrames$$' -fuzztime $(FUZZTIME) ./wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzCheckPartial$$' -fuzztime $(FUZZTIME) ./wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzValidJSON$$' -fuzztime $(FUZZTIME) ./hub
	$(GO) test -run '^$$' -fuzz '^FuzzParseCommand$$' -fuzztime $(FUZZTIME) ./hub
	$(GO) test -run '^$$' -fuzz '^FuzzToken$$' -fuzztime $(FUZZTIME) ./hub/auth
