# walkeeper — build, test, lint, demo, bench.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
BIN := bin/walkeeper
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build test lint demo bench fuzz clean

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/walkeeper

# The whole suite, against real PostgreSQL 15 (run as the postgres OS user when root).
test:
	$(GO) test -count=1 -timeout 25m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# A throwaway PostgreSQL cluster archived, backed up and restored by walkeeper.
demo: build
	bash scripts/demo.sh

bench: build
	bash scripts/bench.sh

fuzz:
	$(GO) test -run '^$$' -fuzz=FuzzParse -fuzztime=30s ./internal/segments/

clean:
	rm -rf bin
