# etcd-migrate build, test and demo. `make demo` and `make test` are the two
# commands a newcomer runs; see README.md.

# The etcd versions the image bundles; the binaries are built from the Go module
# proxy. The newest is the default target.
BUNDLED_VERSIONS ?= 3.4.13 3.5.35 3.6.16 3.7.3
OUTPUT   ?= _output
BIN_DIR  ?= $(OUTPUT)/bin
GO       ?= go
TEST_TIMEOUT ?= 30m

empty :=
space := $(empty) $(empty)
comma := ,
BUNDLED_LIST := $(subst $(space),$(comma),$(strip $(BUNDLED_VERSIONS)))
NEWEST_VERSION := $(lastword $(BUNDLED_VERSIONS))

export CGO_ENABLED := 0

.PHONY: all build etcd-binaries test test-unit test-e2e demo bench fixtures clean

all: build etcd-binaries

build:
	$(GO) build -trimpath -ldflags "-X main.defaultBundledVersions=$(BUNDLED_LIST)" -o $(BIN_DIR)/migrate ./cmd/migrate

# One stamp per version: a second `make etcd-binaries` does nothing.
etcd-binaries: $(foreach v,$(BUNDLED_VERSIONS),$(BIN_DIR)/.etcd-$(v).stamp)

$(BIN_DIR)/.etcd-%.stamp: hack/build-etcd.sh
	hack/build-etcd.sh $* $(BIN_DIR)
	@touch $@

test: build etcd-binaries
	$(GO) vet ./...
	ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-unit:
	$(GO) test -count=1 ./pkg/... ./cmd/...

test-e2e: build etcd-binaries
	ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./test/...

DEMO_DIR := $(OUTPUT)/demo
# Migrates a copy of the etcd2 fixture (3.4.13/etcd2) to the newest bundled etcd and serves it on
# 127.0.0.1:2379 (Ctrl-C stops it).
demo: build etcd-binaries
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)/data
	tar -xzf testdata/etcd2-3.4.13.tar.gz -C $(DEMO_DIR)/data
	DO_NOT_MOVE_BINARIES=true $(BIN_DIR)/migrate \
		--data-dir=$(DEMO_DIR)/data --target-version=$(NEWEST_VERSION) \
		--bin-dir=$(BIN_DIR) --name=etcd-member -- \
		--name=etcd-member \
		--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
		--listen-peer-urls=http://127.0.0.1:2380

# Walk timings on a larger generated data set; prints medians per step.
bench: build etcd-binaries
	ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) $(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./test/e2e/

# Regenerates the committed fixture with the real etcd 3.4.13.
fixtures: etcd-binaries
	$(GO) run ./hack/genfixture -bin-dir $(BIN_DIR) -version 3.4.13 -keys 2400 -out testdata/etcd3-3.4.13.tar.gz
	$(GO) run ./hack/genfixture -bin-dir $(BIN_DIR) -version 3.4.13 -storage etcd2 -keys 300 -out testdata/etcd2-3.4.13.tar.gz

clean:
	rm -rf $(OUTPUT)
