# recoverd: make demo runs the main job end to end; make test runs every test.
SHELL := /bin/bash
GO ?= go
# Binaries are stamped with the VCS revision (recoverd --version, recoverctl
# version, recoverd_build_info) when git can read this tree; where it cannot
# (a copy without .git, a checkout owned by another user) stamping would
# fail the build, so it is off. Go does not stamp a build in a git worktree.
export GOFLAGS ?= -buildvcs=$(shell git rev-parse --is-inside-work-tree >/dev/null 2>&1 && echo auto || echo false)

MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
# MinIO is built from the Go module proxy once per machine and cached
# outside the work tree, so a fresh clone does not rebuild it (~3 minutes).
MINIO_CACHE := $(HOME)/.cache/recoverd/minio-$(MINIO_VERSION)
MINIO := $(CURDIR)/bin/minio
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
# Two cores here: keep package and test parallelism modest.
TEST_FLAGS ?= -race -count=1 -p 2 -timeout 20m

export RECOVERD_MINIO_BIN := $(MINIO)
# Tests that start real processes use these binaries (see internal/testutil).
export RECOVERD_BIN := $(CURDIR)/bin/recoverd
export RECOVERCTL_BIN := $(CURDIR)/bin/recoverctl
export RECOVERD_SHARDD_BIN := $(CURDIR)/bin/shardd

.PHONY: all build test unit integration soak cluster lint demo bench scale minio proto clean sim promtool

all: build

# bin/recoverd, bin/recoverctl and bin/shardd (the reference engine).
build:
	$(GO) build -o bin/ ./cmd/...

$(MINIO):
	@mkdir -p bin
	@if [ ! -x "$(MINIO_CACHE)/minio" ]; then \
		echo "building MinIO $(MINIO_VERSION) from the Go module proxy (about 3 minutes, once per machine)"; \
		mkdir -p "$(MINIO_CACHE)"; \
		GOBIN="$(MINIO_CACHE)" $(GO) install github.com/minio/minio@$(MINIO_VERSION); \
	fi
	cp "$(MINIO_CACHE)/minio" $(MINIO)

minio: $(MINIO)

# promtool checks the alert rules and the dashboard's queries in deploy/
# (go test ./deploy/ fails without it): Debian's prometheus package.
promtool:
	command -v promtool >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)

# Every test: unit, fault and integration tests, with the race detector,
# after the linters.
test: lint minio build promtool
	$(GO) test $(TEST_FLAGS) ./...

unit: minio build promtool
	$(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -v /integration)

integration: minio build
	$(GO) test $(TEST_FLAGS) ./integration/...

# The 6-node cluster of issue 16 at full size: 100 shard copies per node,
# every node killed in turn (under 5 minutes here; make test runs a short
# variant). Its figures go to bench/results/cluster6.json, which SCALE.md's
# calibration of the simulator reads.
cluster: minio build
	RECOVERD_CLUSTER=full RECOVERD_CLUSTER_RESULTS=$(CURDIR)/bench/results/cluster6.json \
		$(GO) test -race -count=1 -p 1 -timeout 10m -run '^TestClusterEachNodeKilledInTurn$$' -v ./integration/

# The full cluster, then the fault scenarios over and over in a random
# order, for SOAK (a Go duration); not part of make test.
SOAK ?= 2h
soak: cluster
	RECOVERD_SOAK=$(SOAK) $(GO) test -race -p 1 -timeout 0 -run '^TestSoak$$' -v ./integration/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

# The sidecar mode: shardd and recoverd --engine on each of three nodes
# (recoverctl demo --embedded: one recoverd per node).
demo: build
	./bin/recoverctl demo

# make bench: the Go microbenchmarks (planner, chunk path, CRC32C, zstd,
# shardstore, snapshot against MinIO) into bench/results/micro.txt, then
# recoverd side by side with rsync (daemon and over ssh), rclone and cp -r
# (bench/; openssh-server is installed for case 8's own sshd), which writes
# bench/results/REPORT.md and throughput.png. Knobs (bench/README.md):
# BENCH_SCALE=0.25 for a quick run, BENCH_RUNS, BENCH_CASES=1,3,
# RECOVERD_BENCH_DIR (data, default /work/bench-data),
# BENCH_KEEP_DATA=true, BENCH_MICRO=0, BENCH_ARGS (flags of recoverd-bench).
BENCH_ARGS ?=
BENCH_MICRO ?= 1
BENCH_MICRO_PKGS ?= ./planner/ ./transfer/ ./shardstore/ ./snapshot/
BENCH_MICRO_ENV ?= RECOVERD_BENCH_BIG_MB=256 RECOVERD_BENCH_MANY=16 RECOVERD_BENCH_SHARD_MB=128

bench: build minio
	command -v rsync >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y rsync)
	command -v rclone >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y rclone)
	test -x /usr/sbin/sshd && command -v ssh >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server openssh-client)
	$(GO) build -o bin/recoverd-bench ./bench
	@mkdir -p bench/results
	if [ "$(BENCH_MICRO)" = 1 ]; then set -o pipefail; env $(BENCH_MICRO_ENV) $(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(BENCH_MICRO_PKGS) | tee bench/results/micro.txt; fi
	./bin/recoverd-bench $(BENCH_ARGS)

# make scale: one node holding 10,000 and 100,000 small shards (issue 16):
# time to ready, idle RSS and descriptors, ListShards latency, a recovery
# onto the node vs onto an empty one (bench/scale/). Writes
# bench/results/scale.md and scale.json (REPORT.md's Scale section). Data
# sets are cached under $(RECOVERD_BENCH_DIR) (default /work/bench-data).
# SCALE_SHARDS=10000 for a quick run; SCALE_ARGS for more flags.
SCALE_SHARDS ?= 10000,100000
SCALE_ARGS ?=
scale: build
	$(GO) build -o bin/recoverd-scale ./bench/scale
	@mkdir -p bench/results
	./bin/recoverd-scale -shards $(SCALE_SHARDS) $(SCALE_ARGS)

# make sim: the fleet simulations of SCALE.md, one command per table, in
# the page's order (sim/: deterministic, no I/O; about 10 minutes here).
SIM ?= $(GO) run ./sim
sim:
	$(SIM) -fail rack:0
	$(SIM) -fail zone:0
	$(SIM) -fail rack:0 -vary max-outgoing=2,8 -vary max-snapshot-downloads=4,16 -vary use-snapshots=true,false
	$(SIM) -fail zone:0 -max-outgoing 8 -vary max-snapshot-downloads=4,16 -vary use-snapshots=true,false
	$(SIM) -fail rack:0 -max-outgoing 8 -max-snapshot-downloads 16 -vary throttle=0,250MB,100MB,50MB
	$(SIM) -fail none -vary cleanup-sweep=held,own,all,off -vary snapshot-interval=0s,1h,30m
	$(SIM) -fail rack:0 -cleanup-sweep off -max-outgoing 8 -max-snapshot-downloads 16 -vary layout=current,hashed -vary prefix-chars=1,2,8,12
	$(SIM) -fail rack:0 -cleanup-sweep off -prefix-depth 0 -max-outgoing 8 -max-snapshot-downloads 16 -vary throttle=0,100MB,50MB

# Regenerates api/recoverdv1 from recoverd.proto and engine.proto (protoc from Debian's
# protobuf-compiler, plugins pinned through the Go module proxy).
proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	protoc -I api/recoverdv1 -I /usr/include \
		--plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grpc=bin/protoc-gen-go-grpc \
		--go_out=api/recoverdv1 --go_opt=paths=source_relative \
		--go-grpc_out=api/recoverdv1 --go-grpc_opt=paths=source_relative \
		api/recoverdv1/recoverd.proto api/recoverdv1/engine.proto

clean:
	rm -rf bin
