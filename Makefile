# mcpjail build, test and demo. `make test` is the one command CI runs: it
# installs what it needs from the package registries and runs every suite.

GO        ?= go
BIN       := bin/mcpjail
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# An execution count, not a duration: with a duration, Go's fuzzer sometimes
# fails a clean run with "context deadline exceeded" while stopping workers.
FUZZTIME  ?= 400000x
# The host facts asserted by the doctor tests (Landlock ABI 7, hybrid cgroups,
# no BPF-LSM) hold on this project's machines; the kernel-VM suite unsets it.
export MCPJAIL_EXPECT_HOST ?= 1

.PHONY: all build test test-unit test-e2e fuzz lint deps servers generate generate-check demo bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mcpjail

## deps: system packages the tests need (Debian), installed only when missing.
deps:
	@./tests/deps.sh

## servers: the pinned reference MCP servers from the npm registry.
servers:
	@./tests/servers/install.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test: deps servers lint generate-check build test-unit test-e2e fuzz

test-unit:
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v /tests)

test-e2e:
	$(GO) test -count=1 -timeout 20m ./tests/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./profiles/

## generate: rebuild the bpf2go bindings and objects with Debian's clang-19.
generate:
	@./tests/deps.sh bpf
	$(GO) generate ./...

## generate-check: the committed eBPF objects are what the sources compile to.
generate-check: generate
	@if [ -n "$$(git status --porcelain -- bpf/)" ]; then \
		echo "generated eBPF files differ from the committed ones; run make generate and commit:"; \
		git status --short -- bpf/; exit 1; \
	fi

demo: build servers
	$(GO) run ./tests/demo

bench: build servers
	@./tests/deps.sh bench
	$(GO) run ./tests/bench

clean:
	rm -rf bin
