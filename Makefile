# walkeeper — build, test, lint, demo, bench.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
BIN := bin/walkeeper
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Go's own install directory, when go is not on PATH already (CI, a fresh machine).
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build setup test lint demo bench fuzz clean pg-majors test-all-pg

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/walkeeper

# What test, demo and bench need (PostgreSQL 15, the postgres user, sshd, zstd, ...):
# a few stat calls when all is there; installs the rest as root, else names the command.
setup:
	@bash scripts/setup.sh

# The whole suite, against real PostgreSQL 15 (run as the postgres OS user when root).
test: setup
	$(GO) test -count=1 -timeout 25m ./...

# The server binaries of the other PostgreSQL majors (13, 14, 16, 17, 18), fetched once and
# cached (scripts/pg-majors.sh says where); prints "MAJOR BINDIR" per major.
pg-majors:
	@bash scripts/pg-majors.sh --check

# The real-PostgreSQL test matrix on the other majors (WALKEEPER_PG_MAJORS, default
# 13,14,16,17,18): a representative subset of the suite per major, see the script.
test-all-pg: setup
	bash scripts/test-all-pg.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# A throwaway PostgreSQL cluster archived, backed up and restored by walkeeper.
demo: setup build
	bash scripts/demo.sh

bench: setup build
	bash scripts/bench.sh

# Every test that does not need PostgreSQL (pgtest skips the others in -short mode), under
# the race detector.
.PHONY: race
race:
	$(GO) test -race -short -count=1 -timeout 20m ./...

# Every fuzz target, one after the other (go test takes one -fuzz target per package run),
# each for FUZZTIME. Targets are found by name, so a new one is fuzzed without editing this.
# A crasher is written to the package's testdata/fuzz/<Target>/: commit it as a regression seed.
FUZZTIME ?= 10s
fuzz:
	@set -e; for d in $$(grep -rl --include='*_test.go' '^func Fuzz' cmd internal | xargs -n1 dirname | sort -u); do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$d/*_test.go); do \
			echo "== fuzz ./$$d $$fn for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) ./$$d/; \
		done; \
	done

clean:
	rm -rf bin
