# SPDX-License-Identifier: MIT
# weft: one non-recursive Makefile. Output in $(BUILD) (default build/),
# quiet unless V=1. Modules are discovered by convention:
#   userspace/<module>/*.c      -> libweft (weftd's main is userspace/node/main.c)
#   tools/weftctl/*.c           -> weftctl
#   bpf/*.bpf.c                 -> $(BUILD)/bpf/*.bpf.o + *.skel.h (bpftool)
#   tests/unit/test_*.c         -> cmocka binaries, built with ASan + UBSan
#                                  (test_<module>_<unit>: TESTS=<module>)
#   tests/sim/test_sim_*.c      -> multi-node scenarios in one process, built
#                                  like the unit tests, into $(BUILD)/sim/
#   tests/integration/test_*.sh -> run by tests/run.sh against ASan binaries
#   bench/bench_*.c             -> benchmark harnesses (make bench)
#   tests/tools/*.c             -> helpers the integration tests run
#   tests/fuzz/fuzz_*.c         -> libFuzzer targets (make fuzz); make test
#                                  replays each over tests/fuzz/corpus/<target>/
#                                  (linked with tests/fuzz/replay.c, gcc)

BUILD   ?= build
V       ?= 0
ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' '$(1)' '$(2)';
endif

CC      ?= gcc
CLANG   ?= clang
BPFTOOL ?= bpftool
ARCH    := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

PKGS := libbpf libxdp liburing libngtcp2 libngtcp2_crypto_gnutls gnutls \
	nettle libcrypto libsodium lmdb inih libmicrohttpd jansson libcurl cmocka
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes \
	    -Wmissing-prototypes -Wformat=2 -Wvla
CPPFLAGS := -Iinclude -Iuserspace -Itests/lib -I$(BUILD)/bpf -D_GNU_SOURCE
BASE_CFLAGS := -std=gnu11 -O2 -g $(WARN) -MMD -MP -fno-strict-aliasing -pthread
CFLAGS   ?=
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   = $(PKG_LIBS) -lunistring -lm -lpthread

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Iinclude -I/usr/include/$(MULTIARCH)

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:
.PHONY: all run test unit integration bench fuzz install clean deps check-deps format check-layers tsan \
	man deb

# MODULES="common store node" restricts libweft to those modules (handy while
# another module is mid-edit); default: every module.
MODULES ?= $(notdir $(wildcard userspace/*))
LIB_SRCS := $(filter-out userspace/node/main.c,$(wildcard $(addprefix userspace/,$(addsuffix /*.c,$(MODULES)))))
SIMD_SRCS := $(filter %_sse41.c %_avx2.c %_avx512.c,$(LIB_SRCS))
CTL_SRCS := $(wildcard tools/weftctl/*.c)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
SIM_SRCS := $(wildcard tests/sim/test_*.c)
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
BENCH_SRCS := $(wildcard bench/bench_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
# make test's corpus replays: each target with tests/fuzz/replay.c on the
# sanitized objects (gcc), no clang build of the library (docs/FUZZING.md).
FUZZ_REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRCS))
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRCS))

# Two flavours of every object: release (obj/) and sanitized (san/).
OBJ_rel := $(BUILD)/obj
OBJ_san := $(BUILD)/san
OBJ_fuzz := $(BUILD)/fuzzobj
# ThreadSanitizer (`make tsan`: build/tsan/weftd): the stress recipe's second
# build (docs/OPERATIONS.md "Stress recipe"), never part of make test.
OBJ_tsan := $(BUILD)/tsan
CC_tsan := $(CC)
CC_rel := $(CC)
CC_san := $(CC)
CC_fuzz := $(CLANG)
FLAGS_rel := $(BASE_CFLAGS) $(CFLAGS)
# Test hooks (content test_corrupt and the like, POST /v1/svc/debug/descriptor)
# exist in the sanitized and fuzz flavours only, never in the release weftd.
TEST_HOOKS := -DWEFT_TEST_HOOKS
FLAGS_san := $(BASE_CFLAGS) $(SAN) $(TEST_HOOKS) $(CFLAGS)
FLAGS_fuzz := $(BASE_CFLAGS) -Wno-error -O1 -fsanitize=fuzzer-no-link,address,undefined \
	$(TEST_HOOKS) $(CFLAGS)
# TSan does not model fences: the seqlocks (policer config, guard slots) are
# suppressed in tools/tsan.supp instead.
FLAGS_tsan := $(BASE_CFLAGS) -O1 -fsanitize=thread -Wno-tsan $(TEST_HOOKS) $(CFLAGS)

lib_objs = $(patsubst %.c,$(OBJ_$(1))/%.o,$(LIB_SRCS))
ctl_objs = $(patsubst %.c,$(OBJ_$(1))/%.o,$(CTL_SRCS))

all: $(BUILD)/weftd $(BUILD)/weftctl $(BUILD)/weftlab-sim $(BPF_OBJS) $(BPF_SKELS)

# make test, make run and make bench build on every CPU unless the caller
# gave -j itself (make -j1: one job): CI and the README type a bare
# `make test`, which built one file at a time (6.3 of CI's ~24 minutes on
# 2 CPUs).
NPROC := $(shell nproc 2>/dev/null || echo 1)
PAR = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))

# ---- dependency check: install the Debian packages if any is missing ----
deps:
	$(Q)tools/deps.sh install
check-deps:
	$(Q)tools/deps.sh check || tools/deps.sh install

# ---- BPF ----
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) include/weft/xdp_abi.h include/weft/xdp_policy.h \
		include/weft/relay_policy.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# ---- userspace objects, both flavours ----
define flavour
$(OBJ_$(1))/%.o: %.c | $(BPF_SKELS)
	$$(call msg,CC,$$@)
	$(Q)mkdir -p $$(@D)
	$(Q)$$(CC_$(1)) $$(CPPFLAGS) $$(PKG_CFLAGS) $$(FLAGS_$(1)) $$(if $$(filter %_sse41.c,$$<),-msse4.1) $$(if $$(filter %_avx2.c,$$<),-mavx2) $$(if $$(filter %_avx512.c,$$<),-mavx512f -mavx512vl) -c $$< -o $$@

$(OBJ_$(1))/libweft.a: $(call lib_objs,$(1))
	$$(call msg,AR,$$@)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(eval $(call flavour,rel))
$(eval $(call flavour,san))
$(eval $(call flavour,fuzz))
$(eval $(call flavour,tsan))

# The dashboard's page, script and style are assembled into assets.o.
$(foreach f,rel san fuzz tsan,$(OBJ_$(f))/userspace/dash/assets.o): $(wildcard userspace/dash/assets/*)

# The daemon without libm (~320 KiB of an idle weftd's RSS, docs/BENCH.md
# "bench_mem"): weftd calls no libm function, and with -lm on the line
# libunistring's frexp and ldexp would bind to it rather than to libc.
$(BUILD)/weftd: $(OBJ_rel)/userspace/node/main.o $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(filter-out -lm,$(LDLIBS))

$(BUILD)/tsan/weftd: $(OBJ_tsan)/userspace/node/main.o $(OBJ_tsan)/libweft.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(FLAGS_tsan) -o $@ $^ $(LDLIBS)
tsan: $(BUILD)/tsan/weftd

# weftctl loads libcurl when it first talks to weftd (tools/weftctl/client.c)
$(BUILD)/weftctl: $(call ctl_objs,rel) $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(filter-out -lcurl,$(LDLIBS))

# weftlab sim's driver: the DHT core on a simulated network (docs/LAB.md).
$(BUILD)/weftlab-sim: $(OBJ_rel)/tools/weftlab-sim/weftlab_sim.o $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(LDLIBS)

# Sanitized daemon and CLI: what the integration tests run.
$(BUILD)/san/weftd: $(OBJ_san)/userspace/node/main.o $(OBJ_san)/libweft.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(FLAGS_san) -o $@ $^ $(LDLIBS)

$(BUILD)/san/weftctl: $(call ctl_objs,san) $(OBJ_san)/libweft.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(FLAGS_san) -o $@ $^ $(filter-out -lcurl,$(LDLIBS))

# ---- tests ----
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/test/%,$(UNIT_SRCS))
SIM_BINS := $(patsubst tests/sim/%.c,$(BUILD)/sim/%,$(SIM_SRCS))
TESTLIB_OBJS := $(patsubst %.c,$(OBJ_san)/%.o,$(TESTLIB_SRCS))

$(BUILD)/test/%: $(OBJ_san)/tests/unit/%.o $(TESTLIB_OBJS) $(OBJ_san)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_san) -o $@ $^ $(LDLIBS)

$(BUILD)/sim/%: $(OBJ_san)/tests/sim/%.o $(TESTLIB_OBJS) $(OBJ_san)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_san) -o $@ $^ $(LDLIBS)

# Helper programs the integration tests run (plain release flags: a flood
# sender must be fast, not instrumented).
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))
$(BUILD)/tools/%: tests/tools/%.c
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(FLAGS_rel) -o $@ $<

# relay_node runs the relay data plane (engine + XDP program), relay_load
# binds with relay_bind_request, heap_probe sets malloc up as weftd does:
# linked to libweft.
$(BUILD)/tools/relay_node $(BUILD)/tools/relay_load $(BUILD)/tools/heap_probe: $(BUILD)/tools/%: tests/tools/%.c $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(FLAGS_rel) -o $@ $^ $(LDLIBS)

TEST_BINS := $(TOOL_BINS) $(UNIT_BINS) $(SIM_BINS) $(BUILD)/san/weftd $(BUILD)/san/weftctl $(BUILD)/weftd $(BUILD)/weftctl \
	$(BUILD)/weftlab-sim \
	$(BPF_OBJS) $(FUZZ_REPLAY_BINS)

# The layers rule (docs/ARCHITECTURE.md, "Layers"): on the symbols of the
# built objects, a module uses only modules below it and node/ is used by
# none; no call cycle between a module's files; prefixes; includes; file
# size. Checked before the tests.
check-layers: $(OBJ_rel)/libweft.a
	$(Q)/usr/bin/python3 tools/check-layers.py --objdir $(OBJ_rel)

test: check-deps
	$(Q)$(MAKE) --no-print-directory $(PAR) $(TEST_BINS) check-layers
	$(Q)BUILD=$(BUILD) tests/run.sh $(TESTS)

# ---- run a node with embedded defaults ----
RUN_ARGS ?=
run: check-deps
	$(Q)$(MAKE) --no-print-directory $(PAR) all
	$(Q)exec $(BUILD)/weftd $(RUN_ARGS)

# ---- benchmarks (never part of make test) ----
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
# bench/benchlib.c (pinning, CPU accounting, JSON results) goes into every harness.
$(BUILD)/bench/%: $(OBJ_rel)/bench/%.o $(OBJ_rel)/bench/benchlib.o $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(LDLIBS)

# bench_dht's servers live in bench/dht_procs.c, its part (b) in
# bench/dht_net.c (bench/bench_dht.h).
$(BUILD)/bench/bench_dht: $(OBJ_rel)/bench/bench_dht.o $(OBJ_rel)/bench/dht_procs.o \
			  $(OBJ_rel)/bench/dht_net.o $(OBJ_rel)/bench/benchlib.o $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(LDLIBS)

# bench_announce drives the simulated DHT of the tests (tests/lib/dhtsim.c).
$(BUILD)/bench/bench_announce: $(OBJ_rel)/bench/bench_announce.o $(OBJ_rel)/tests/lib/dhtsim.o \
			       $(OBJ_rel)/bench/benchlib.o $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(LDLIBS)

# bench_mesh drives the mesh world of the tests (tests/lib/meshsim.c).
$(BUILD)/bench/bench_mesh: $(OBJ_rel)/bench/bench_mesh.o $(OBJ_rel)/tests/lib/meshsim.o \
			   $(OBJ_rel)/bench/benchlib.o $(OBJ_rel)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_rel) -o $@ $^ $(LDLIBS)

bench: check-deps
	$(Q)$(MAKE) --no-print-directory $(PAR) all $(BENCH_BINS) $(BUILD)/tools/relay_node $(BUILD)/tools/relay_load \
		$(BUILD)/tools/http_echo
	$(Q)bench/blake3ref/build.sh $(BUILD)
	$(Q)BUILD=$(BUILD) bench/run.sh $(BENCHES)

# ---- fuzz targets (clang + libFuzzer) ----
$(BUILD)/fuzz/%: $(OBJ_fuzz)/tests/fuzz/%.o $(OBJ_fuzz)/libweft.a
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
fuzz: check-deps $(FUZZ_BINS)
$(BUILD)/fuzz-replay/%: $(OBJ_san)/tests/fuzz/%.o $(OBJ_san)/tests/fuzz/replay.o $(OBJ_san)/libweft.a
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(FLAGS_san) -o $@ $^ $(LDLIBS)

# ---- weftlab: the launcher tools/weftlab runs the package tools/pylib/weftlab ----
# Its bash completion is written from its argparse parser, so it cannot drift.
WEFTLAB_PY := $(wildcard tools/pylib/weftlab/*.py)
all: $(BUILD)/completion/weftlab
TEST_BINS += $(BUILD)/completion/weftlab
$(BUILD)/completion/weftlab: $(WEFTLAB_PY)
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)cd tools/pylib && /usr/bin/python3 -B -m weftlab.completion >$(abspath $@)

install: all
	install -d $(DESTDIR)/usr/local/sbin $(DESTDIR)/usr/local/bin
	install -m 0755 $(BUILD)/weftd $(DESTDIR)/usr/local/sbin/weftd
	install -m 0755 $(BUILD)/weftctl $(DESTDIR)/usr/local/bin/weftctl
	install -m 0755 tools/weftlab $(DESTDIR)/usr/local/bin/weftlab
	install -d $(DESTDIR)/usr/local/lib/weft/pylib/weftlab
	install -m 0755 $(BUILD)/weftlab-sim $(DESTDIR)/usr/local/lib/weft/weftlab-sim
	# weftlab-aria2: the launcher, which runs weftlab.aria2 under that name
	install -m 0755 tools/weftlab $(DESTDIR)/usr/local/lib/weft/weftlab-aria2
	install -m 0644 $(WEFTLAB_PY) $(DESTDIR)/usr/local/lib/weft/pylib/weftlab/

# ---- operators: man pages and the Debian package (docs/OPERATIONS.md) ----
# weftd(8) and weftctl(8): tools/man/*.in with the programs' own --help;
# weft.conf(5): the keys table of docs/CONFIG.md.
MAN_PAGES := $(BUILD)/man/weftd.8 $(BUILD)/man/weftctl.8 $(BUILD)/man/weft.conf.5 $(BUILD)/man/weftlab.1
man: $(MAN_PAGES)
$(BUILD)/man/weftd.8 $(BUILD)/man/weftctl.8: $(BUILD)/man/%.8: tools/man/%.8.in tools/man/mkman.py $(BUILD)/%
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BUILD)/$* --help >$@.usage
	$(Q)/usr/bin/python3 tools/man/mkman.py $< $@.usage $@
# weftlab(1): its command list from weftlab --help (a Python script: no build)
$(BUILD)/man/weftlab.1: tools/man/weftlab.1.in tools/man/mkman.py tools/weftlab $(WEFTLAB_PY)
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)/usr/bin/python3 tools/weftlab --help | sed -n '/^commands:/,$$p' >$@.usage
	$(Q)/usr/bin/python3 tools/man/mkman.py $< $@.usage $@
$(BUILD)/man/weft.conf.5: docs/CONFIG.md tools/man/mkman.py
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)/usr/bin/python3 tools/man/mkman.py weft.conf.5 $< $@

# The package is built in a copy of the tree (dpkg-buildpackage writes its
# output beside the source, and debian/rules clean must not touch build/):
# $(BUILD)/deb/weft_*.deb.
deb:
	$(Q)rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	$(Q)tar -c --exclude=./.git --exclude=./build --exclude='./$(BUILD)' --exclude=./debian/build \
		-f - . | tar -x -C $(BUILD)/deb/src
	$(Q)cd $(BUILD)/deb/src && DEB_BUILD_OPTIONS="parallel=2 $${DEB_BUILD_OPTIONS:-}" \
		dpkg-buildpackage -us -uc -b
	$(Q)ls $(BUILD)/deb/*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
