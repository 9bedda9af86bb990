# etcd-migrate build, test and demo. `make demo` and `make test` are the two
# commands a newcomer runs; see README.md.

# The etcd versions migrate and the image bundle; the binaries are built from the Go
# module proxy (releases before 3.4 from the pins in hack/old-etcd/). The newest is
# the default target. VARIANT=full (the default) bundles every release from 2.2.5,
# so data written by any of them walks to the newest; VARIANT=slim only 3.4 and
# newer (etcd2 data up to 3.5 still converts). 3.4.25 is the newest 3.4 patch the
# module proxy serves: walks through 3.4 run it (etcd's patch rule); 3.4.13 stays
# as a target (Kubernetes' own).
VARIANT ?= full
SLIM_VERSIONS ?= 3.4.13 3.4.25 3.5.35 3.6.16 3.7.3
OLD_VERSIONS ?= 2.2.5 2.3.8 3.0.17 3.1.20 3.2.32 3.3.27
ifeq ($(VARIANT),slim)
BUNDLED_VERSIONS ?= $(SLIM_VERSIONS)
else ifeq ($(VARIANT),full)
BUNDLED_VERSIONS ?= $(OLD_VERSIONS) $(SLIM_VERSIONS)
else
$(error VARIANT=$(VARIANT): use full or slim)
endif
OUTPUT   ?= _output
GO       ?= go
TEST_TIMEOUT ?= 30m

# Target architecture of `make build`, `make etcd-binaries` and `make image`: amd64,
# arm64, ppc64le or s390x. The host's own arch keeps its binaries in _output/bin (the
# tests run those); another arch's are cross-built (GOOS=linux, CGO off) into
# _output/bin/linux-<arch>/.
ALL_ARCH  := amd64 arm64 ppc64le s390x
HOST_ARCH := $(shell $(GO) env GOHOSTARCH)
ARCH     ?= $(HOST_ARCH)
ifeq ($(ARCH),$(HOST_ARCH))
BIN_DIR  ?= $(OUTPUT)/bin
CROSS_ENV :=
else
BIN_DIR  ?= $(OUTPUT)/bin/linux-$(ARCH)
CROSS_ENV := GOOS=linux GOARCH=$(ARCH)
endif

empty :=
space := $(empty) $(empty)
comma := ,
BUNDLED_LIST := $(subst $(space),$(comma),$(strip $(BUNDLED_VERSIONS)))
NEWEST_VERSION := $(lastword $(BUNDLED_VERSIONS))

export CGO_ENABLED := 0

.PHONY: all build etcd-binaries old-etcd-binaries test-old-etcd test-old-data test report test-crash test-unit test-e2e test-image test-manifest cross-check demo bench bench-scale fixtures clean
.PHONY: image image-all push push-all

all: build etcd-binaries

build:
	$(CROSS_ENV) $(GO) build -trimpath -ldflags "-X github.com/etcd-migrate/etcd-migrate/cmd/migrate/app.defaultBundledVersions=$(BUNDLED_LIST)" -o $(BIN_DIR)/migrate ./cmd/migrate

# One stamp per version: a second `make etcd-binaries` does nothing.
etcd-binaries: $(foreach v,$(BUNDLED_VERSIONS),$(BIN_DIR)/.etcd-$(v).stamp)

# A version's pin file, when it has one (hack/old-etcd/<v>.mod), is a prerequisite too:
# editing a pin rebuilds that version.
.SECONDEXPANSION:
$(BIN_DIR)/.etcd-%.stamp: hack/build-etcd.sh $$(wildcard hack/old-etcd/$$*.mod)
	$(CROSS_ENV) hack/build-etcd.sh $* $(BIN_DIR)
	@touch $@

# The releases before 3.4: not in `make etcd-binaries` (the default bundle), built
# for `make test`.
old-etcd-binaries: $(foreach v,$(OLD_VERSIONS),$(BIN_DIR)/.etcd-$(v).stamp)

# What migrate does with data the releases before 3.4 write (test/e2e/olddata_test.go,
# build tag oldetcd): part of `make test`.
test-old-data: build etcd-binaries old-etcd-binaries
	$(TEST_ENV) $(GO) test -tags oldetcd -count=1 -timeout 30m -run '^TestOld' ./test/e2e/

# Starts each old release, writes and reads through v2 (and v3 from 3.0) with its own
# etcdctl, stops it. Behind the oldetcd build tag: not part of `make test` yet.
test-old-etcd: old-etcd-binaries
	ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) ETCD_MIGRATE_OLD_VERSIONS="$(OLD_VERSIONS)" \
		$(GO) test -tags oldetcd -count=1 -v ./test/oldetcd/

# Then the image test, verbose so that its timings, or why it was skipped (neither
# buildah nor a docker engine), show; and test/manifest, a module of its own (it
# needs k8s.io/api).
# The reliability suites leave one summary line each in REPORT_DIR; `make test`
# prints them last (kills survived, ENOSPC cases, hostile inputs, keys lost).
REPORT_DIR := $(abspath $(OUTPUT))/report
TEST_ENV    = ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) ETCD_MIGRATE_REPORT_DIR=$(REPORT_DIR)

test: build etcd-binaries old-etcd-binaries
	rm -rf $(REPORT_DIR)
	$(GO) vet ./...
	$(GO) vet -tags oldetcd ./test/e2e/
	$(TEST_ENV) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/test/image$$')
	$(MAKE) test-old-data
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME_CI)
	$(MAKE) test-image
	$(MAKE) test-manifest
	@$(MAKE) --no-print-directory report

# Prints the reliability summaries of the last test run.
report:
	@echo "== reliability summary =="
	@cat $(REPORT_DIR)/hostile.txt $(REPORT_DIR)/enospc.txt $(REPORT_DIR)/crash.txt $(REPORT_DIR)/ha-crash.txt $(REPORT_DIR)/powercut.txt 2>/dev/null || true

# The crash suite alone, at any size: `make test-crash CRASH_KILLS=300`.
CRASH_KILLS       ?= 50
CRASH_OCCURRENCES ?= 2
CRASH_PARALLEL    ?= 4
test-crash: build etcd-binaries
	rm -f $(REPORT_DIR)/crash.txt
	$(TEST_ENV) ETCD_MIGRATE_CRASH_KILLS=$(CRASH_KILLS) ETCD_MIGRATE_CRASH_OCCURRENCES=$(CRASH_OCCURRENCES) \
		ETCD_MIGRATE_CRASH_PARALLEL=$(CRASH_PARALLEL) $(GO) test -count=1 -timeout 120m -run '^TestCrashSuite$$' ./test/e2e/
	@cat $(REPORT_DIR)/crash.txt

# Fuzz targets (package dir:function). `make fuzz` runs each for FUZZTIME; `make test`
# for FUZZTIME_CI. New inputs go to the Go build cache; copy the ones worth keeping to
# the package's testdata/fuzz/<function>/. -fuzzminimizetime bounds the minimization
# of each new input (60s by default, which stalls a short run). `make test` counts
# executions instead of time: Go 1.26's fuzz coordinator can report a bare "context
# deadline exceeded" failure at the end of a -fuzztime duration when the machine is
# busy (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZ_TARGETS := pkg/versionfile:FuzzParsePair pkg/versionfile:FuzzReadVersionFile pkg/steps:FuzzPlan pkg/v2tov3:FuzzUnquote
FUZZTIME     ?= 2m
FUZZTIME_CI  ?= 20000x

.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "$(GO) test -run '^\$$' -fuzz '^'$$fn'\$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg/"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg/; \
	done

test-unit:
	$(GO) test -count=1 ./pkg/... ./cmd/...

test-e2e: build etcd-binaries
	ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./test/...

# The image test: builds images/Dockerfile FROM scratch through hack/image.sh into a
# temp buildah store (or with docker) and runs it on fixture data dirs, and runs
# Kubernetes' GCE etcd manifest (testdata/gce-etcd.manifest) unchanged in it; then
# builds the full variant (every release from 2.2.5) and walks 2.2.5 data in it.
# ETCD_MIGRATE_IMAGE_RUNS=5 repeats the timed runs and prints medians.
test-image: build etcd-binaries old-etcd-binaries
	ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) ETCD_MIGRATE_FULL_VERSIONS="$(OLD_VERSIONS) $(SLIM_VERSIONS)" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./test/image/

# testdata/etcd.manifest.yaml decoded strictly as a v1.Pod, its command and env
# parsed with migrate's own flag and environment code, its etcd flags checked
# against the real binaries' --help.
# -mod=mod: a dependency added to the main module (which test/manifest builds through
# its replace directive) cannot break it for a missing go.sum line.
test-manifest: etcd-binaries
	cd test/manifest && GOFLAGS=-mod=mod $(GO) vet ./... && \
		ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) GOFLAGS=-mod=mod $(GO) test -count=1 ./...

# Cheap cross-compile check of migrate alone (no etcd builds): the other image
# architectures and Windows.
cross-check:
	@set -e; for a in $(filter-out $(HOST_ARCH),$(ALL_ARCH)); do \
		echo "GOOS=linux GOARCH=$$a go build ./cmd/migrate"; \
		GOOS=linux GOARCH=$$a $(GO) build -o /dev/null ./cmd/migrate; \
	done
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/migrate

# The image: images/Dockerfile over the binaries of `make build etcd-binaries
# ARCH=$(ARCH)`, built with docker or buildah (hack/image.sh picks; IMAGE_TOOL forces
# one). `make image ARCH=arm64` cross-builds the arm64 binaries and image (the
# Dockerfile runs nothing, so no emulation is needed). BASE_IMAGE=scratch builds
# without a registry; unset, it is gcr.io/distroless/static-debian12, or scratch with
# a warning when that cannot be pulled. The image's /bin/sh (for Kubernetes' GCE
# manifest) is Debian's bash-static, fetched once with `apt-get download` into
# $(OUTPUT)/debs; SHELL_DEB=<file.deb> gives it instead (offline machines), and
# another ARCH needs `dpkg --add-architecture <arch> && apt-get update` first.
# `make push` / `make push-all` are for release: they push
# $(IMAGE):$(IMAGE_TAG)-linux-<arch> and the manifest list $(IMAGE):$(IMAGE_TAG).
REGISTRY  ?= localhost
IMAGE     ?= $(REGISTRY)/etcd-migrate
IMAGE_TAG ?= $(NEWEST_VERSION)$(if $(filter slim,$(VARIANT)),-slim)
IMAGE_REF  = $(IMAGE):$(IMAGE_TAG)-linux-$(ARCH)
IMAGE_ENV  = IMAGE=$(IMAGE_REF) ARCH=$(ARCH) BIN_DIR=$(BIN_DIR) BUNDLED_VERSIONS="$(BUNDLED_VERSIONS)" \
	IMAGE_VERSION=$(IMAGE_TAG) CONTEXT_DIR=$(OUTPUT)/image/linux-$(ARCH) DEB_DIR=$(abspath $(OUTPUT))/debs

image: build etcd-binaries
	$(IMAGE_ENV) hack/image.sh build
	@echo "built $(IMAGE_REF)"

image-all:
	@set -e; for a in $(ALL_ARCH); do $(MAKE) image ARCH=$$a; done

push: image
	$(IMAGE_ENV) hack/image.sh push

push-all:
	@set -e; for a in $(ALL_ARCH); do $(MAKE) push ARCH=$$a; done
	MANIFEST=$(IMAGE):$(IMAGE_TAG) \
	IMAGE_ARCHS="$(foreach a,$(ALL_ARCH),$(a)=$(IMAGE):$(IMAGE_TAG)-linux-$(a))" hack/image.sh push-manifest

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

# The scale benchmark (not in `make test`): the walk on 1M keys of 1 KiB written by
# the real 3.4.13 and the etcd2 conversion of 1M v2 keys against etcdctl migrate.
# SCALE_KEYS, SCALE_VALUE, SCALE_RUNS, SCALE_ETCD2_KEYS size it; SCALE_DATA keeps the
# generated data between runs. Its figures go to $(REPORT_DIR)/scale.txt.
bench-scale: build etcd-binaries
	mkdir -p $(REPORT_DIR)
	SCALE_BENCH=1 ETCD_MIGRATE_BIN_DIR=$(abspath $(BIN_DIR)) $(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 180m ./test/e2e/ | tee $(REPORT_DIR)/scale.txt

# Regenerates the committed fixture with the real etcd 3.4.13.
fixtures: etcd-binaries
	$(GO) run ./hack/genfixture -bin-dir $(BIN_DIR) -version 3.4.13 -keys 2400 -out testdata/etcd3-3.4.13.tar.gz
	$(GO) run ./hack/genfixture -bin-dir $(BIN_DIR) -version 3.4.13 -storage etcd2 -keys 300 -out testdata/etcd2-3.4.13.tar.gz

clean:
	rm -rf $(OUTPUT)
