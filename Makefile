# mcpjail build, test and demo. `make test` is the one command CI runs: it
# installs what it needs from the package registries and runs every suite.

GO        ?= go
BIN       := bin/mcpjail
# The init step every jail runs before its server, and `mcpjail daemon`,
# both installed beside mcpjail.
INIT_BIN  := bin/mcpjail-init
DAEMON_BIN := bin/mcpjail-daemon
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# An execution count, not a duration: with a duration, Go's fuzzer sometimes
# fails a clean run with "context deadline exceeded" while stopping workers.
FUZZTIME  ?= 400000x
# The host facts asserted by the doctor tests (Landlock ABI 7, hybrid cgroups,
# no BPF-LSM) hold on this project's CI machines (CI=true); elsewhere (a
# developer's box, the Vagrant VM) the suite reads the kernel instead. The
# kernel-VM suite always unsets it.
export MCPJAIL_EXPECT_HOST ?= $(if $(filter true,$(CI)),1,0)
# Every build here (the binary, the test and VM builds) leaves out urfave/cli's
# man-page and Markdown generators, which mcpjail does not use: their
# package init costs each of the four processes of a run about 0.3 ms.
export GOFLAGS += -tags=urfave_cli_no_docs

# Install layout: `make install` for this host, or
# `make install PREFIX=/usr DESTDIR=pkgroot` to stage a package.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
# A host's own install puts the unit with the administrator's units; a
# staged one (DESTDIR set) with the distribution's.
UNITDIR    ?= $(if $(DESTDIR),/lib/systemd/system,/etc/systemd/system)

.PHONY: all build test test-unit test-e2e fuzz lint deps servers generate generate-check demo bench bench-vm clean install check-unit test-vm check-scripts

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(INIT_BIN) ./cmd/mcpjail-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DAEMON_BIN) ./cmd/mcpjail-daemon
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mcpjail
	chmod 0755 $(BIN) $(INIT_BIN) $(DAEMON_BIN)

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

test: deps servers lint check-scripts generate-check build check-unit test-unit test-e2e fuzz test-vm

test-unit:
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v /tests)

test-e2e:
	$(GO) test -count=1 -timeout 20m ./tests/...

## test-vm: the end-to-end suite again, inside Debian's 6.1 cloud kernel under
## QEMU TCG (pure cgroup v2, Landlock ABI 2, BPF LSM on); see tests/vm/run.sh.
test-vm:
	@./tests/deps.sh vm
	env -u MCPJAIL_EXPECT_HOST ./tests/vm/run.sh

## check-scripts: the Vagrant provisioning and the kernel-VM scripts pass
## bash -n (sh -n for the guest's busybox init) and shellcheck.
check-scripts:
	@./tests/deps.sh vm
	bash -n tests/vm/provision.sh
	bash -n tests/vm/run.sh
	sh -n tests/vm/init.sh
	shellcheck tests/vm/provision.sh tests/vm/run.sh tests/vm/init.sh tests/deps.sh

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

## bench-vm: the BPF-LSM path-matching benchmark (inode walk against
## bpf_d_path plus an LPM trie; bpf/lsm_compare_test.go) in the kernel VM,
## where BPF LSM programs load.
bench-vm:
	@./tests/deps.sh vm
	env -u MCPJAIL_EXPECT_HOST MCPJAIL_VM_MODE=bench ./tests/vm/run.sh

## install: the binary, the systemd unit (paths rewritten for BINDIR and
## SYSCONFDIR), and the example config, profile and servers.d directories.
## An existing config file is never overwritten.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/mcpjail
	install -D -m 0755 $(INIT_BIN) $(DESTDIR)$(BINDIR)/mcpjail-init
	install -D -m 0755 $(DAEMON_BIN) $(DESTDIR)$(BINDIR)/mcpjail-daemon
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/mcpjail \
		$(DESTDIR)$(SYSCONFDIR)/mcpjail/profiles $(DESTDIR)$(SYSCONFDIR)/mcpjail/servers.d
	sed -e 's|/usr/local/bin/mcpjail|$(BINDIR)/mcpjail|g' -e 's|/etc/mcpjail/|$(SYSCONFDIR)/mcpjail/|g' \
		deploy/systemd/mcpjail.service > $(DESTDIR)$(UNITDIR)/mcpjail.service.new
	chmod 0644 $(DESTDIR)$(UNITDIR)/mcpjail.service.new
	mv -f $(DESTDIR)$(UNITDIR)/mcpjail.service.new $(DESTDIR)$(UNITDIR)/mcpjail.service
	@for f in mcpjail.yaml profiles/README profiles/example-memory.yaml servers.d/example.yaml.disabled; do \
		dst=$(DESTDIR)$(SYSCONFDIR)/mcpjail/$$f; \
		if [ -e "$$dst" ]; then echo "install: keeping the existing $$dst"; \
		else sed -e 's|/etc/mcpjail/|$(SYSCONFDIR)/mcpjail/|g' deploy/etc/$$f > "$$dst.new" && \
			chmod 0644 "$$dst.new" && mv "$$dst.new" "$$dst" && echo "install: $$dst"; fi; \
	done
	@if [ -z "$(DESTDIR)" ] && ! getent group mcpjail >/dev/null; then \
		groupadd --system mcpjail && echo "install: created the group mcpjail (allow_group)"; fi
	@echo "install: done; then: systemctl daemon-reload && systemctl enable --now mcpjail"

## check-unit: `systemd-analyze verify` on the unit as `make install` writes it.
check-unit: build
	@./tests/check-unit.sh

clean:
	rm -rf bin
