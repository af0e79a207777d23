# cetcd: top-level build. `make help` lists the targets.
#
# Sources are discovered, not listed: every .c under common/, server/, client/, controller/ (but
# the main files) goes into libcetcd.a; server/main.c links into bin/cetcd, cli/*.c into
# bin/cetcdctl, controller/main.c into bin/cetcd-operator;
# tests/unit/test_*.c each become a test binary linked against libcetcd.a. Protobuf C code is
# generated from proto/*.proto into $(B)/gen. Two build trees: build/ (optimised) and
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer), chosen with SAN=1.

SHELL      := /bin/bash
CC         ?= cc
PKGS       := libnghttp2 libprotobuf-c libcjson yaml-0.1 libcurl openssl lmdb libwebsockets
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SAN),1)
B          := build-asan
OPT        := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN      := -fsanitize=address,undefined
else
B          := build
OPT        := -O2 -g
LDSAN      :=
endif
BIN        := $(if $(filter 1,$(SAN)),$(B)/bin,bin)

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers \
               -I. -Icommon -Iserver -Icontroller -I$(B)/gen $(PKG_CFLAGS)
CFLAGS     ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(OPT) $(CFLAGS) -MMD -MP
LIBS       := $(PKG_LIBS) -lpthread -lm -lcrypt

PROTOS     := $(wildcard proto/*.proto)
GEN_C      := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
GEN_H      := $(GEN_C:.c=.h)
LIB_SRC    := $(filter-out server/main.c controller/main.c,$(shell find common server client controller -name '*.c' 2>/dev/null | sort))
CLI_SRC    := $(shell find cli -name '*.c' 2>/dev/null | sort)
TEST_SRC   := $(wildcard tests/unit/test_*.c)
LIB_OBJ    := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC)) $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(GEN_C))
TEST_BIN   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(TEST_SRC))

.PHONY: all help run test unit asan integration compat bench fuzz sim cluster clean distclean deps check-deps e2e helm image

all: $(BIN)/cetcd $(BIN)/cetcdctl $(BIN)/cetcd-operator ## build bin/cetcd, bin/cetcdctl and bin/cetcd-operator

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

deps: ## install missing Debian packages (hack/deps.sh)
	@bash hack/deps.sh

run: deps all ## install deps, build, start one member on 127.0.0.1:2379/2380, data in ./default.etcd
	exec ./bin/cetcd --name default --data-dir ./default.etcd \
	  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380

test: deps ## every suite: unit, simulation, unit+integration under ASan/UBSan, compatibility (etcdctl, python, curl, WebSocket, Patroni), kube-lite
	@bash tests/run.sh

unit: $(TEST_BIN) ## build and run the unit tests (this build tree)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done

integration: all ## integration tests against real processes on loopback
	@bash tests/integration/run.sh $(BIN)

compat: all ## compatibility suites: etcdctl 3.4, python3-etcd3, curl, against cetcd and etcd 3.4
	@bash tests/compat/run.sh $(BIN)

asan: ## unit + integration tests built with AddressSanitizer and UndefinedBehaviorSanitizer
	@$(MAKE) --no-print-directory SAN=1 unit
	@$(MAKE) --no-print-directory SAN=1 integration

e2e: all ## operator end to end on kube-lite (needs root): CRD, RBAC, operator, scale 1-3-5-3-1, healing, failpoints, backups, restore, TLS and auth
	@bash tests/e2e/run.sh

helm: all ## Helm chart: template subset (hack/helm-render), chart checks, install on kube-lite (needs root)
	@bash tests/helm/run.sh

IMAGE_TAG ?= 0.1.0
image: ## build the cetcd and cetcd-operator images with Docker (where a Docker engine exists)
	@command -v docker >/dev/null || { echo "make image: no docker here; the images are built where a Docker engine exists"; exit 1; }
	docker build --target cetcd -t cetcd:$(IMAGE_TAG) .
	docker build --target cetcd-operator -t cetcd-operator:$(IMAGE_TAG) .

bench: all ## side-by-side benchmark against etcd 3.4: one member, 3-member clusters, watch+lease, snapshot save and restore (BENCH=single|cluster|watch|snapshot|all)
	@bash hack/bench.sh

SIM_SRC    := $(wildcard tests/sim/*.c)
SEEDS      ?= 500
sim: $(B)/tests/sim ## deterministic Raft simulation: SEEDS=N seeds (default 500), or SEED=s to replay one
	@$(B)/tests/sim $(if $(SEED),--seed $(SEED) --verbose,--seeds $(SEEDS))

$(B)/tests/sim: $(SIM_SRC) $(wildcard tests/sim/*.h) $(B)/libcetcd.a | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) $(CFLAGS) -Itests/sim -o $@ $(SIM_SRC) $(B)/libcetcd.a $(LDSAN) $(LIBS)

cluster: all ## start a local 3-member cetcd cluster on 127.0.0.1 (hack/cluster.sh; Ctrl-C stops it)
	@bash hack/cluster.sh

FUZZ_SECONDS ?= 20
fuzz: ## libFuzzer targets (gRPC frames, protobuf, JSON gateway, WAL reader), FUZZ_SECONDS each
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

clean: ## remove build outputs
	rm -rf build build-asan build-fuzz bin

$(BIN)/cetcd: $(B)/obj/server/main.o $(B)/libcetcd.a | $(BIN)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BIN)/cetcd-operator: $(B)/obj/controller/main.o $(B)/libcetcd.a | $(BIN)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BIN)/cetcdctl: $(patsubst %.c,$(B)/obj/%.o,$(CLI_SRC)) $(B)/libcetcd.a | $(BIN)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

# One archive holds server, client and controller objects: a global name defined twice would
# silently link whichever object comes first, so the build refuses duplicates.
$(B)/libcetcd.a: $(LIB_OBJ)
	@dups=$$(nm -g --defined-only $^ 2>/dev/null | awk 'NF==3 && $$2 ~ /[TDBR]/ {print $$3}' | sort | uniq -d); \
	  if [ -n "$$dups" ]; then echo "libcetcd.a: global names defined twice: $$dups" >&2; exit 1; fi
	@rm -f $@
	ar rcs $@ $^

$(B)/tests/%: tests/unit/%.c $(B)/libcetcd.a | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(B)/libcetcd.a $(LDSAN) $(LIBS) -lcmocka

$(B)/obj/gen/%.o: $(B)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) -w -c -o $@ $<

$(B)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto $(PROTOS)
	@mkdir -p $(B)/gen
	protoc-c --proto_path=proto --c_out=$(B)/gen $<

$(BIN):
	@mkdir -p $@

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

gen: $(GEN_H) ## generate protobuf-c code into $(B)/gen
.PHONY: gen
